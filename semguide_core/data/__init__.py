"""Datasets: one loader per real layout (CUB-200-2011, Stanford Cars-196, Virtual KITTI 2), the sample
generator that writes the embedded samples in those layouts, and the prepared-dataset format."""
