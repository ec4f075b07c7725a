"""The last steps the drift plots share (encoders and LMs): legend under the axes, title, grid, save, close."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def finish_plot(fig: Any, ax: Any, handles: list[Any], names: list[str], title: str, path: Path) -> Path:
    """Legend under the axes, title, grid; saved to ``path`` (its folder made) and closed."""
    import matplotlib.pyplot as plt

    ax.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
