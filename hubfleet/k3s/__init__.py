"""k3s members: config files, install, bootstrap steps, kubeconfig and the upgrade plan."""
