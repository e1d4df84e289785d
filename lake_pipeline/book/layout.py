"""State layout of the order book: three flat int64 arrays shared by every numba kernel that touches a book.

`bid[i]` / `ask[i]` hold the size (lots) resting at price tick `meta[M_BASE] + i`; 0 means no level. Both sides share
one base so comparing best indices compares prices. `meta` carries the scalars the kernels keep incrementally.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_WINDOW",
    "M_BASE",
    "M_BEST_ASK",
    "M_BEST_BID",
    "M_DROPPED",
    "M_N_ASK",
    "M_N_BID",
    "M_RECENTRES",
    "M_WINDOW",
    "META_LEN",
    "META_NAMES",
]

DEFAULT_WINDOW = 1 << 21  # ticks per side: +-1 M ticks around the centre ($10,000 either side of BTC at 0.01)

M_BASE = 0  # price tick at index 0; always >= 1, so a price <= 0 never falls inside the window
M_BEST_BID = 1  # index of the best bid, -1 when the bid side is empty
M_BEST_ASK = 2  # index of the best ask, W when the ask side is empty
M_N_BID = 3  # occupied bid levels
M_N_ASK = 4  # occupied ask levels
M_DROPPED = 5  # levels lost to re-centring + updates whose price did not fit (or was not positive); survives clear
M_WINDOW = 6  # W, the width of each side's array (checked on restore)
M_RECENTRES = 7  # how often the window moved; survives clear
META_LEN = 8

META_NAMES = ("base", "best_bid", "best_ask", "n_bid", "n_ask", "dropped", "window", "recentres")
