# The paper broker's latency model: C-level only, used by
# PaperBroker and ExecutionSim (orpflow._core.broker); nothing here is called from Python.
