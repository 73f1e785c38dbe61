"""The fga pillar (work in progress)."""

__all__: list[str] = []
