# The paper broker's simulated venue (matching, fills, requests, exec_apply): C-level only, used by
# PaperBroker and ExecutionSim (orpflow._core.broker); nothing here is called from Python.
