"""semguide: Semantic Guidance + model-based DDPG painting (Singh & Zheng, CVPR 2021) as a DVC pipeline."""
import os

# OpenMP threads that spin while waiting make torch's many small CPU ops 10-100x slower as soon as another
# process shares the cores; passive waiting costs nothing measurable on an idle machine. It must be set
# before torch loads: it applies wherever semguide_core is imported first (the `semguide` command, .ci/run).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
