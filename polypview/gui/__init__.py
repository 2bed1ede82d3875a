"""The desktop window: a thin PyQt6 view over the Qt-free core.

``app.run_window`` builds it; ``MainWindow`` composes the widgets and wires them to the one
``PlayerController``, which owns the pipeline. Frames and answers from other threads reach the GUI
thread only through ``threads`` (``ResultBridge``, ``Background``). Nothing outside this package
imports Qt (``lint-imports`` checks it), and ``polypview.cli`` imports it only to open the window.
"""
