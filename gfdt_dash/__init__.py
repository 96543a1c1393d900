"""gfdt-dash: response functions of stochastic fields from learned scores.

The numerical core (``gfdt_dash.systems``, ``gfdt_dash.response``, ``gfdt_dash.score``) is a plain
PyTorch/xarray library; the Panel dashboard lives in ``gfdt_dash.ui`` and ``app.py``.
"""

__version__ = "0.1.0"
