"""Package data of the NLP module: word lists and tables, each file naming its source."""
