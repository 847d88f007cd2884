"""Training and export (PyTorch, imported lazily by ``lepton-robot train``; never at run time)."""
