"""
The operator command parser: plain-English utterances to ``lepton.intent/1`` payloads.

Core modules (no torch, no rclpy): :mod:`.text` (sanitation, tokenisation, typo-tolerant
normalisation), :mod:`.values` (slot values to canonical values), :mod:`.safety` (the
model-free stop / e-stop fast path), :mod:`.features` (token features shared by training and
runtime), :mod:`.decode` (model outputs to an intent), :mod:`.corpus` (training corpus
generator) and :mod:`.runtime` (ONNX Runtime inference, ``CommandParser``).
"""
