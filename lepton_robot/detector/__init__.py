"""
Defect detection core (no ROS, no torch): belt segmentation, part crops, backends, decision.

The node (``lepton_robot/nodes/defect_detector_node.py``), the ``inspect``/``evaluate``
commands, training and the benchmark all use this package, so the same code runs
everywhere.
"""
