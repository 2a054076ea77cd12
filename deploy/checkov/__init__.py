# checkov loads the checks of a directory only when it is a package.
