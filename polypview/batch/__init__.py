"""Archive-scale batch: many procedure videos annotated (and reported) into one output folder.

One module per job, wired together in ``run.run_batch``:

- ``plan``: the command's inputs (videos, folders, list files) as jobs with unique output names;
- ``job``: one video, start to finish, into ``DIR/<name>/`` (the one function both engines run);
- ``embedded``: the jobs one after another in this process, the model loaded once;
- ``cluster``: the jobs as tasks on a pool of Ray actors, imported only for ``--ray``;
- ``summary``: every video's figures as ``summary.csv`` and ``summary.json``;
- ``progress``: one overall bar, and a line per finished video.
"""
