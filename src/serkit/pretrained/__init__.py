"""Models shipped inside the package: ``default.pt`` is serkit's default model (see docs/model_card.md)."""
