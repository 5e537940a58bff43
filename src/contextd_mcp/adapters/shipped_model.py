"""The embedding model that ships in the wheel (adapters/minilm), by the name settings use for it.

Its own module, standard library only: settings name it as the default, and the embedder
adapter recognises it, without either importing the other."""

SHIPPED_MODEL = "contextd/all-MiniLM-L6-v2-int8"
