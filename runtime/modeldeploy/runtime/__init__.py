"""modeldeploy's ONNX Runtime inference server on the Open Inference Protocol v2 (REST).

Run it as ``python -m modeldeploy.runtime`` (or the ``modeldeploy-runtime`` script). Every flag has
an environment variable twin (``contract.FLAG_ENV``); flags win. ``--help`` lists them.

Lifecycle:

1. The listener opens at once: ``/v2/health/live`` answers 200 from then on; readiness
   (``/v2/health/ready``, ``/v2/models/{name}/ready``) and inference answer 503.
2. The model is fetched (``file://``, plain path, ``pvc://claim/path`` under ``--pvc-root``,
   ``http(s)://``, ``s3://`` with the ``s3`` extra), its sha256 checked against ``--sha256``
   (a mismatch exits 4, printing expected and actual digests), the session created, and warm-up
   inferences run on signature-shaped zeros. Only then does readiness turn 200 and
   ``modeldeploy_model_ready`` 1. Exit codes: 2 bad configuration, 3 load failure, 4 digest.
3. On SIGTERM: readiness turns 503 at once; after ``--drain-delay-s`` (default 0) the listener
   closes (new connections are refused), requests already received are answered with
   ``connection: close``, idle connections are closed, and the process exits 0 when no
   connection is left or ``--grace-period-s`` is over, whichever comes first.

Modules, one concept each: ``contract`` (names the operator imports; stdlib only), ``config``
(flags and environment), ``loading`` (URI to verified file), ``model`` (session, signature,
warm-up), ``codec`` (v2 JSON and binary tensors), ``batching`` (dynamic batching and the worker
thread), ``metrics`` (Prometheus), ``app`` (endpoints), ``httpserver`` (HTTP/1.1 on asyncio and
httptools), ``__main__`` (wiring and the lifecycle above).
"""
