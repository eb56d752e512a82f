"""The Falcon app: the blob API over a store, SPARQL and browsing over the graph.

Words: the *blob API* (`/chute/blob/...`) moves ciphertext and needs no key
(any node can be a storage peer); the *plaintext routes* (`/chute/sparql`,
`/chute/snapshots...`, `POST /chute/snapshot`) exist only where the key is.
`app.create_app` wires resources; `app.build` opens what they need from the
settings; `wsgi.app` is the same app for gunicorn; `chute serve` runs it on
waitress.
"""
