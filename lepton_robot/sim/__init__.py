"""
Seeded PyBullet work cell: belt, feeder, parts with defects, camera, Panda arm, bins.

The modules import nothing heavy at package import time: ``camera`` and ``scenario`` are
pure numpy/PyYAML (the detector uses them for pixel -> world), ``cell`` imports pybullet.
"""
