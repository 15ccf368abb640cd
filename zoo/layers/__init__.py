"""Plain ``torch.nn`` building blocks from the papers. Nothing here imports Lightning."""

__all__: list[str] = []
