"""Storage for dino: the ``Store`` contract (``base``) and its implementations."""
