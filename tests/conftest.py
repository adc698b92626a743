"""Test-session setup.

The tests run many small tensor operations (thousands of particles in 1-3 dimensions). On a
2-core machine, torch's intra-op threading makes such tiny ops slower, dramatically so when the
other core is busy (a 2000-particle softmax took 7 ms with 2 threads under load vs <0.1 ms with
one), so the suite uses one thread. Results do not depend on the thread count.
"""

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))  # for the shared test cases in _cases.py
