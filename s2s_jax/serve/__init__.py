"""`s2s-serve`: matching over HTTP for the Sound2Synth Dexed plug-in, a JSON API and a web page."""
