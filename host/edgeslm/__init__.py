"""edgeslm: put a small language model on a microcontroller.

The data flows through plain functions, one module per stage (see DESIGN.md):
``model`` (load) -> ``reference`` (float oracle) -> ``quant`` (quantize, golden model) -> ...
"""

__version__ = "0.1.0"
