# The engine's per-event loop and thread loops: C-level only, used by EngineCore
# (orpflow._core.engine); nothing here is called from Python.
