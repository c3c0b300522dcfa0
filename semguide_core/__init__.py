"""semguide: Semantic Guidance + model-based DDPG painting (Singh & Zheng, CVPR 2021) as a DVC pipeline."""
import os
import sys

# OpenMP threads that spin while waiting make torch's many small CPU ops 10-100x slower as soon as another
# process shares the cores; passive waiting costs nothing measurable on an idle machine. OpenMP reads the
# variable once, when torch loads it, so this line only helps where semguide_core is imported before torch
# (the `semguide` command). OMP_PASSIVE records whether it came in time: where torch was imported first (most
# stage scripts), runtime.run_stage re-executes the stage with the variable set.
_torch_loaded_first = "torch" in sys.modules
_policy_before = os.environ.get("OMP_WAIT_POLICY", "")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
OMP_PASSIVE = (_policy_before if _torch_loaded_first else os.environ["OMP_WAIT_POLICY"]).upper() == "PASSIVE"
