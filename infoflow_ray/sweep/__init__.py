"""The Ray layer: grid expansion, the cascade actor pool, Tune baseline trials, the driver and its CLI."""
