"""One module per ``interpretdl-noise`` sub-command."""
