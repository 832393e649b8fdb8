"""hubfleet: deploy and operate a federation of BinderHub/JupyterHub clusters from one repo."""

__version__ = "0.1.0"
