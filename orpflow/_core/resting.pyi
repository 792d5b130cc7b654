# The paper broker's resting orders and queue models: C-level only, used by
# PaperBroker and ExecutionSim (orpflow._core.broker); nothing here is called from Python.
