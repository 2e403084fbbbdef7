"""The guest side of Warden's one door out: `warden.fetch`, a `requests`-compatible module and
`urllib.request.urlopen`, all sending through the host's `fetch` import. The host decides
whether a request may leave (allowlist, blocked networks), adds credentials the code never
sees, and follows redirects; a refusal arrives here as an exception carrying the reason.

Nothing here is trusted: replacing these modules changes only what the program sees.
"""

import base64 as _base64
import json as _json
import sys
import types
import urllib.parse as _parse
from collections.abc import Mapping, MutableMapping

import wit_world
from componentize_py_types import Err


class CaseInsensitiveDict(MutableMapping):
    """Header names compare case-insensitively; the last spelling set is kept for display."""

    def __init__(self, data=None, **kwargs):
        self._store = {}
        self.update(data or {}, **kwargs)

    def __setitem__(self, key, value):
        self._store[key.lower()] = (key, value)

    def __getitem__(self, key):
        return self._store[key.lower()][1]

    def __delitem__(self, key):
        del self._store[key.lower()]

    def __iter__(self):
        return (original for original, _ in self._store.values())

    def __len__(self):
        return len(self._store)

    def __eq__(self, other):
        if isinstance(other, Mapping):
            other = CaseInsensitiveDict(other)
        else:
            return NotImplemented
        return {k: v for k, (_, v) in self._store.items()} == {
            k: v for k, (_, v) in other._store.items()
        }

    def copy(self):
        return CaseInsensitiveDict(self._store.values())

    def __repr__(self):
        return repr(dict(self.items()))


def _joined_headers(pairs):
    headers = CaseInsensitiveDict()
    for name, value in pairs:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class FetchError(Exception):
    """The host refused the request or could not complete it; the message says why."""


class FetchResponse:
    """What `warden.fetch` returns."""

    def __init__(self, raw):
        self.status = raw.status
        self.status_text = raw.status_text
        self.url = raw.url
        self.redirected = raw.redirected
        self.header_list = list(raw.headers)
        self.headers = _joined_headers(self.header_list)
        self.body = bytes(raw.body)

    @property
    def ok(self):
        return 200 <= self.status < 300

    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return _json.loads(self.body)

    def __repr__(self):
        return f"<FetchResponse [{self.status}] {self.url}>"


def fetch(url, method="GET", headers=None, body=None):
    """Sends one request through the host. `body` is bytes or str; headers a mapping or pairs.
    Raises FetchError with the host's reason when the request is refused or fails."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is None:
        body = b""
    elif not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
    if headers is None:
        pairs = []
    elif isinstance(headers, Mapping):
        pairs = [(str(k), str(v)) for k, v in headers.items()]
    else:
        pairs = [(str(k), str(v)) for k, v in headers]
    request = wit_world.HttpRequest(
        method=str(method).upper(), url=str(url), headers=pairs, body=bytes(body)
    )
    try:
        return FetchResponse(wit_world.fetch(request))
    except Err as e:
        raise FetchError(str(e.value)) from None


# ------------------------------------------------------------------------------ requests


class RequestException(IOError):
    def __init__(self, *args, response=None, request=None):
        super().__init__(*args)
        self.response = response
        self.request = request


class HTTPError(RequestException):
    pass


class ConnectionError(RequestException):  # noqa: A001 - the name requests uses
    pass


class Timeout(RequestException):
    pass


class TooManyRedirects(RequestException):
    pass


class InvalidURL(RequestException, ValueError):
    pass


class JSONDecodeError(RequestException, ValueError):
    pass


class Response:
    """The parts of `requests.Response` that programs use."""

    def __init__(self, fetched, method):
        self.status_code = fetched.status
        self.reason = fetched.status_text
        self.url = fetched.url
        self.headers = fetched.headers
        self.content = fetched.body
        self.encoding = "utf-8"
        self.history = []
        self.request = types.SimpleNamespace(method=method, url=fetched.url)
        self.is_redirect = False

    @property
    def ok(self):
        return self.status_code < 400

    def __bool__(self):
        return self.ok

    @property
    def text(self):
        return self.content.decode(self.encoding or "utf-8", errors="replace")

    def json(self, **kwargs):
        try:
            return _json.loads(self.content, **kwargs)
        except ValueError as e:
            raise JSONDecodeError(str(e), response=self) from None

    def iter_content(self, chunk_size=1, decode_unicode=False):
        data = self.text if decode_unicode else self.content
        step = chunk_size or len(data) or 1
        for i in range(0, len(data), step):
            yield data[i : i + step]

    def iter_lines(self, decode_unicode=False):
        for line in self.content.splitlines():
            yield line.decode("utf-8", errors="replace") if decode_unicode else line

    def raise_for_status(self):
        kind = "Client" if 400 <= self.status_code < 500 else "Server"
        if self.status_code >= 400:
            raise HTTPError(
                f"{self.status_code} {kind} Error: {self.reason} for url: {self.url}",
                response=self,
            )

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<Response [{self.status_code}]>"


def _with_params(url, params):
    if not params:
        return url
    if isinstance(params, (str, bytes)):
        query = params.decode() if isinstance(params, bytes) else params
    else:
        items = params.items() if isinstance(params, Mapping) else params
        query = _parse.urlencode([(k, v) for k, v in items if v is not None], doseq=True)
    parts = _parse.urlsplit(url)
    joined = f"{parts.query}&{query}" if parts.query else query
    return _parse.urlunsplit(parts._replace(query=joined))


def request(
    method,
    url,
    params=None,
    data=None,
    headers=None,
    json=None,
    timeout=None,
    auth=None,
    allow_redirects=True,
    **_ignored,
):
    """`requests.request`. The host bounds the time and follows redirects itself."""
    send_headers = CaseInsensitiveDict(headers or {})
    body = b""
    if json is not None:
        body = _json.dumps(json).encode("utf-8")
        send_headers.setdefault("Content-Type", "application/json")
    elif isinstance(data, (Mapping, list, tuple)):
        items = data.items() if isinstance(data, Mapping) else data
        body = _parse.urlencode(list(items), doseq=True).encode("utf-8")
        send_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif isinstance(data, str):
        body = data.encode("utf-8")
    elif data is not None:
        body = bytes(data)
    if auth is not None:
        user, password = auth
        token = _base64.b64encode(f"{user}:{password}".encode()).decode()
        send_headers["Authorization"] = f"Basic {token}"
    method = str(method).upper()
    target = _with_params(str(url), params)
    if not _parse.urlsplit(target).scheme:
        raise InvalidURL(f"Invalid URL {target!r}: No scheme supplied")
    try:
        fetched = fetch(target, method, list(send_headers.items()), body)
    except FetchError as e:
        message = str(e)
        if "timed out" in message:
            raise Timeout(message) from None
        if "too many redirects" in message:
            raise TooManyRedirects(message) from None
        raise ConnectionError(message) from None
    return Response(fetched, method)


def get(url, params=None, **kwargs):
    return request("GET", url, params=params, **kwargs)


def options(url, **kwargs):
    return request("OPTIONS", url, **kwargs)


def head(url, **kwargs):
    return request("HEAD", url, **kwargs)


def post(url, data=None, json=None, **kwargs):
    return request("POST", url, data=data, json=json, **kwargs)


def put(url, data=None, **kwargs):
    return request("PUT", url, data=data, **kwargs)


def patch(url, data=None, **kwargs):
    return request("PATCH", url, data=data, **kwargs)


def delete(url, **kwargs):
    return request("DELETE", url, **kwargs)


class Session:
    """`requests.Session`: default headers and params for every request."""

    def __init__(self):
        self.headers = CaseInsensitiveDict()
        self.params = {}
        self.auth = None

    def request(self, method, url, params=None, headers=None, **kwargs):
        merged = CaseInsensitiveDict(self.headers)
        merged.update(headers or {})
        all_params = dict(self.params)
        if isinstance(params, Mapping):
            all_params.update(params)
        kwargs.setdefault("auth", self.auth)
        return request(method, url, params=all_params or params, headers=merged, **kwargs)

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, data=None, json=None, **kwargs):
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url, data=None, **kwargs):
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url, data=None, **kwargs):
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url, **kwargs):
        return self.request("DELETE", url, **kwargs)

    def head(self, url, **kwargs):
        return self.request("HEAD", url, **kwargs)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------------------ urllib


class URLError(OSError):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason

    def __str__(self):
        return f"<urlopen error {self.reason}>"


class _HTTPResponse:
    """What `urlopen` returns: file-like, with status and headers."""

    def __init__(self, fetched):
        self.status = fetched.status
        self.reason = fetched.status_text
        self.url = fetched.url
        self.headers = fetched.headers
        self._body = fetched.body
        self._pos = 0

    def read(self, amt=None):
        end = len(self._body) if amt is None or amt < 0 else self._pos + amt
        chunk = self._body[self._pos : end]
        self._pos += len(chunk)
        return chunk

    def readline(self):
        end = self._body.find(b"\n", self._pos)
        return self.read(len(self._body) - self._pos if end < 0 else end + 1 - self._pos)

    def readlines(self):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readlines())

    def getcode(self):
        return self.status

    code = property(getcode)

    def geturl(self):
        return self.url

    def getheader(self, name, default=None):
        return self.headers.get(name, default)

    def getheaders(self):
        return list(self.headers.items())

    def info(self):
        return self.headers

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class HTTPErrorURL(URLError):
    """`urllib.error.HTTPError`: a response with an error status, readable like one."""

    def __init__(self, url, code, msg, hdrs, fp):
        super().__init__(msg)
        self.url = url
        self.code = code
        self.msg = msg
        self.hdrs = hdrs
        self.headers = hdrs
        self.fp = fp

    def read(self, amt=None):
        return self.fp.read(amt)

    def getcode(self):
        return self.code

    @property
    def status(self):
        return self.code

    def __str__(self):
        return f"HTTP Error {self.code}: {self.msg}"


class Request:
    """`urllib.request.Request`."""

    def __init__(self, url, data=None, headers=None, method=None):
        self.full_url = url
        self.data = data
        self.headers = CaseInsensitiveDict(headers or {})
        self.method = method

    def get_method(self):
        return (self.method or ("POST" if self.data is not None else "GET")).upper()

    def add_header(self, key, val):
        self.headers[key] = val

    def has_header(self, key):
        return key in self.headers

    def get_header(self, key, default=None):
        return self.headers.get(key, default)

    def get_full_url(self):
        return self.full_url


def urlopen(url, data=None, timeout=None, **_ignored):
    """`urllib.request.urlopen` over the host's fetch. Error statuses raise HTTPError, as in
    urllib; refusals raise URLError with the host's reason."""
    req = url if isinstance(url, Request) else Request(str(url), data=data)
    if data is not None and isinstance(url, Request):
        req.data = data
    body = req.data
    if isinstance(body, str):
        raise TypeError("POST data should be bytes, an iterable of bytes, or a file object")
    if body is not None and not req.has_header("Content-Type"):
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        fetched = fetch(req.full_url, req.get_method(), list(req.headers.items()), body)
    except FetchError as e:
        raise URLError(str(e)) from None
    response = _HTTPResponse(fetched)
    if fetched.status >= 400:
        raise HTTPErrorURL(fetched.url, fetched.status, fetched.status_text, fetched.headers, response)
    return response


def _module(name, doc, **members):
    module = types.ModuleType(name, doc)
    for key, value in members.items():
        if isinstance(value, (type, types.FunctionType)):
            value.__module__ = name
        setattr(module, key, value)
    sys.modules[name] = module
    return module


def install():
    """Puts `warden`, `requests`, `urllib.request` and `urllib.error` in sys.modules."""
    _module(
        "warden",
        "Warden's host interface: fetch(url, method, headers, body) through the policy.",
        fetch=fetch,
        FetchError=FetchError,
        FetchResponse=FetchResponse,
    )
    exceptions = _module(
        "requests.exceptions",
        "requests' exceptions.",
        RequestException=RequestException,
        HTTPError=HTTPError,
        ConnectionError=ConnectionError,
        Timeout=Timeout,
        TooManyRedirects=TooManyRedirects,
        InvalidURL=InvalidURL,
        JSONDecodeError=JSONDecodeError,
    )
    requests = _module(
        "requests",
        "A requests-compatible client on Warden's fetch.",
        request=request,
        get=get,
        head=head,
        options=options,
        post=post,
        put=put,
        patch=patch,
        delete=delete,
        Session=Session,
        session=Session,
        Response=Response,
        RequestException=RequestException,
        HTTPError=HTTPError,
        ConnectionError=ConnectionError,
        Timeout=Timeout,
        TooManyRedirects=TooManyRedirects,
        InvalidURL=InvalidURL,
        JSONDecodeError=JSONDecodeError,
        exceptions=exceptions,
        structures=types.SimpleNamespace(CaseInsensitiveDict=CaseInsensitiveDict),
        codes=types.SimpleNamespace(ok=200, created=201, no_content=204, not_found=404),
    )
    requests.__path__ = []
    HTTPErrorURL.__name__ = HTTPErrorURL.__qualname__ = "HTTPError"
    error = _module("urllib.error", "urllib.error on Warden's fetch.", URLError=URLError, HTTPError=HTTPErrorURL)
    req = _module(
        "urllib.request",
        "urllib.request on Warden's fetch (urlopen and Request).",
        urlopen=urlopen,
        Request=Request,
        URLError=URLError,
        HTTPError=HTTPErrorURL,
    )
    import urllib

    urllib.request = req
    urllib.error = error
