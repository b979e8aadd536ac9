"""The SCIM 2.0 service provider of each organization (RFC 7644): `/scim/v2/organizations/{slug}/…`.

Discovery (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`), `Users` and `Groups` (create, read, list with
`filter`/`startIndex`/`count`/`attributes`, replace, patch, delete). A directory token of the organization is the
only credential (public_app.services.directory.scim_caller); every answer is `application/scim+json`, errors in
SCIM's own shape (`urn:ietf:params:scim:api:messages:2.0:Error`). The protocol objects are scim2-models'.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    Error,
    ETag,
    Filter,
    Group,
    ListResponse,
    Meta,
    Patch,
    PatchOp,
    ResourceType,
    SCIMException,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    User,
)

from public_app import errors
from public_app.access import Access
from public_app.services import directory
from public_app.services.directory import MAX_COUNT, ScimError

CONTENT_TYPE = "application/scim+json"
BASE = "/scim/v2/organizations/{slug}"
DOCS = "https://github.com/orgs/README.md#scim"


def _response(body: dict[str, Any] | None, status: int = 200, location: str | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body) if body is not None else b"", status=status, content_type=CONTENT_TYPE)
    if location:
        response["Location"] = location
    return response


def _error(status: int, detail: str, scim_type: str | None = None) -> HttpResponse:
    error = Error(status=status, detail=detail, scim_type=scim_type)
    response = _response(error.model_dump(scim_ctx=Context.DEFAULT), status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="scim"'
    if status == 503:
        response["Retry-After"] = "5"
    return response


def _base(request: HttpRequest, slug: str) -> str:
    return request.build_absolute_uri(BASE.format(slug=slug))


def _body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ScimError(400, "The body is not valid JSON.", "invalidSyntax") from None


def _validate(model: Any, payload: Any, context: Context) -> Any:
    if not isinstance(payload, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    return model.model_validate(payload, scim_ctx=context)


def _scim_view(handler: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate the directory token for `slug`, run the handler, and answer every failure in SCIM's shape."""

    @csrf_exempt
    def view(request: HttpRequest, slug: str, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        raw = header[7:].strip() if header[:7].lower() == "bearer " else ""
        try:
            access = directory.scim_caller(raw=raw, slug=slug) if raw else None
            if access is None:
                return _error(401, "A SCIM token of this organization is required (Authorization: Bearer scim_…).")
            return handler(request, access, slug, **kwargs)
        except ScimError as exc:
            return _error(exc.status, exc.detail, exc.scim_type)
        except SCIMException as exc:
            error = exc.to_error()
            return _error(int(error.status or 400), error.detail or str(exc), error.scim_type)
        except ValidationError as exc:
            first = Error.from_validation_errors(exc)[0]
            return _error(int(first.status or 400), first.detail or "The request is not valid.", first.scim_type)
        except errors.ApplicationError as exc:
            # The member services' rules (seats, the last owner, roles) in SCIM's shape, with our code in the text.
            status = exc.status if exc.status in (400, 403, 404, 409, 503) else 400
            if exc.status == 422:
                status = 400
            return _error(status, f"{exc.message} ({exc.code})", "invalidValue" if status == 400 else None)

    return view


def _methods(request: HttpRequest, *allowed: str) -> None:
    if request.method not in allowed:
        raise ScimError(405, f"{request.method} is not supported here; use {', '.join(allowed)}.")


def _where(request: HttpRequest, slug: str) -> directory.Where:
    base = _base(request, slug)
    return directory.Where(users=f"{base}/Users", groups=f"{base}/Groups")


def _search(request: HttpRequest) -> SearchRequest:
    params: dict[str, Any] = {key: request.GET.get(key) for key in
                              ("filter", "startIndex", "count", "attributes", "excludedAttributes", "sortBy")
                              if request.GET.get(key) is not None}  # fmt: skip
    for key in ("startIndex", "count"):
        if key in params:
            try:
                params[key] = int(params[key])
            except ValueError:
                raise ScimError(400, f"`{key}` must be an integer.", "invalidValue") from None
    params.pop("sortBy", None)  # sorting is not supported (ServiceProviderConfig says so): the order stays
    return SearchRequest.model_validate(params, scim_ctx=Context.SEARCH_REQUEST)


def _page(items: list[Any], search: SearchRequest) -> tuple[list[Any], int]:
    start = max(1, search.start_index or 1)
    count = MAX_COUNT if search.count is None else max(0, min(search.count, MAX_COUNT))
    return items[start - 1 : start - 1 + count], start


def _dump(resource: Any, context: Context, search: Any = None) -> dict[str, Any]:
    return resource.model_dump(scim_ctx=context, response_parameters=search) if search else \
        resource.model_dump(scim_ctx=context)  # fmt: skip


# Users and Groups ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """One resource type and the directory services that keep it."""

    model: Any
    create: Callable[..., Any]
    get: Callable[..., Any]
    replace: Callable[..., Any]
    patch: Callable[..., Any]
    delete: Callable[..., None]
    find: Callable[..., list[Any]]
    render: Callable[[Any, directory.Where], Any]


USERS = _Kind(User, directory.directory_user_create, directory.directory_user_get, directory.directory_user_replace,
              directory.directory_user_patch, directory.directory_user_delete, directory.directory_users_find,
              directory.user_resource)  # fmt: skip
GROUPS = _Kind(Group, directory.directory_group_create, directory.directory_group_get,
               directory.directory_group_replace, directory.directory_group_patch, directory.directory_group_delete,
               directory.directory_groups_find, directory.group_resource)  # fmt: skip


def _found(kind: _Kind, access: Access, where: directory.Where, search: SearchRequest) -> list[Any]:
    text = search.filter and str(search.filter)
    return [kind.render(record, where) for record in kind.find(organization=access.org, filter_text=text, where=where)]


def _listing_of(resources: list[Any], model: Any, search: SearchRequest) -> HttpResponse:
    page, start = _page(resources, search)
    listing = ListResponse[model](total_results=len(resources), start_index=start, items_per_page=len(page),
                                  resources=page)  # fmt: skip
    return _response(_dump(listing, Context.SEARCH_RESPONSE, search))


def _collection(kind: _Kind) -> Callable[..., HttpResponse]:
    """`POST` creates; `GET` lists (`filter`, `startIndex`, `count`, `attributes`)."""

    def handler(request: HttpRequest, access: Access, slug: str) -> HttpResponse:
        where = _where(request, slug)
        if request.method == "POST":
            record = kind.create(access=access, resource=_validate(kind.model, _body(request),
                                                                   Context.RESOURCE_CREATION_REQUEST))  # fmt: skip
            resource = kind.render(record, where)
            return _response(_dump(resource, Context.RESOURCE_CREATION_RESPONSE), 201, location=resource.meta.location)
        _methods(request, "GET", "POST")
        search = _search(request)
        return _listing_of(_found(kind, access, where, search), kind.model, search)

    return handler


def _search_of(*kinds: _Kind) -> Callable[..., HttpResponse]:
    """`POST …/.search`: the query in the body (RFC 7644 §3.4.3); at the root, every type, each filtered by its own
    attributes."""

    def handler(request: HttpRequest, access: Access, slug: str) -> HttpResponse:
        _methods(request, "POST")
        where = _where(request, slug)
        search = _validate(SearchRequest, _body(request), Context.SEARCH_REQUEST)
        found = [resource for kind in kinds for resource in _found(kind, access, where, search)]
        return _listing_of(found, kinds[0].model if len(kinds) == 1 else User | Group, search)

    return handler


def _resource(kind: _Kind) -> Callable[..., HttpResponse]:
    """One resource: `GET`, `PUT` (replace), `PATCH` (PatchOp, applied by scim2-models), `DELETE`."""

    def handler(request: HttpRequest, access: Access, slug: str, uid: str) -> HttpResponse:
        where = _where(request, slug)
        if request.method == "GET":
            search = _search(request)
            record = kind.get(organization=access.org, uid=uid)
            return _response(_dump(kind.render(record, where), Context.RESOURCE_QUERY_RESPONSE, search))
        if request.method == "PUT":
            resource = _validate(kind.model, _body(request), Context.RESOURCE_REPLACEMENT_REQUEST)
            record = kind.replace(access=access, uid=uid, resource=resource)
            return _response(_dump(kind.render(record, where), Context.RESOURCE_REPLACEMENT_RESPONSE))
        if request.method == "PATCH":
            patch = _validate(PatchOp.__class_getitem__(kind.model), _body(request), Context.RESOURCE_PATCH_REQUEST)
            record = kind.patch(access=access, uid=uid, patch=patch, where=where)
            return _response(_dump(kind.render(record, where), Context.RESOURCE_PATCH_RESPONSE))
        _methods(request, "GET", "PUT", "PATCH", "DELETE")
        kind.delete(access=access, uid=uid)
        return _response(None, 204)

    return handler


# Discovery ----------------------------------------------------------------------------------------------------------


def _config(request: HttpRequest, access: Access, slug: str) -> HttpResponse:
    _methods(request, "GET")
    config = ServiceProviderConfig(
        documentation_uri=DOCS,  # type: ignore[arg-type]  # a string is what pydantic reads a reference from
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_COUNT),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[AuthenticationScheme(
            type="oauthbearertoken", name="SCIM token", primary=True,  # type: ignore[arg-type]
            description="A directory token of the organization (Settings → Members → Directory), as a bearer token.",
        )],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{_base(request, slug)}/ServiceProviderConfig"),
    )  # fmt: skip
    return _response(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


def _resource_types(request: HttpRequest, slug: str) -> list[ResourceType]:
    base = _base(request, slug)
    return [
        ResourceType.from_resource(model).model_copy(update={"meta": Meta(
            resource_type="ResourceType", location=f"{base}/ResourceTypes/{model.__name__}")})
        for model in (User, Group)
    ]  # fmt: skip


def _schemas(request: HttpRequest, slug: str) -> list[Any]:
    base = _base(request, slug)
    found = []
    for model in (User, Group):
        schema = model.to_schema()
        found.append(schema.model_copy(update={"meta": Meta(resource_type="Schema",
                                                            location=f"{base}/Schemas/{schema.id}")}))
    return found


def _listing(request: HttpRequest, items: list[Any], one: str | None, what: str) -> HttpResponse:
    if one is not None:
        for item in items:
            if item.id == one:
                return _response(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        raise ScimError(404, f"{what} {one} not found.")
    model = type(items[0]) if items else ResourceType
    listing = ListResponse[model](  # type: ignore[valid-type]
        total_results=len(items), start_index=1, items_per_page=len(items), resources=items
    )
    return _response(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


def _types_view(request: HttpRequest, access: Access, slug: str, one: str | None = None) -> HttpResponse:
    _methods(request, "GET")
    return _listing(request, _resource_types(request, slug), one, "Resource type")


def _schemas_view(request: HttpRequest, access: Access, slug: str, one: str | None = None) -> HttpResponse:
    _methods(request, "GET")
    return _listing(request, _schemas(request, slug), one, "Schema")


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "", slug: str = "") -> HttpResponse:
    return _error(404, "No such SCIM endpoint.")


urlpatterns = [
    path("ServiceProviderConfig", _scim_view(_config)),
    path("ResourceTypes", _scim_view(_types_view)),
    path("ResourceTypes/<str:one>", _scim_view(_types_view)),
    path("Schemas", _scim_view(_schemas_view)),
    path("Schemas/<str:one>", _scim_view(_schemas_view)),
    path(".search", _scim_view(_search_of(USERS, GROUPS))),
    path("Users", _scim_view(_collection(USERS))),
    path("Users/.search", _scim_view(_search_of(USERS))),
    path("Users/<str:uid>", _scim_view(_resource(USERS))),
    path("Groups", _scim_view(_collection(GROUPS))),
    path("Groups/.search", _scim_view(_search_of(GROUPS))),
    path("Groups/<str:uid>", _scim_view(_resource(GROUPS))),
    re_path(r"^(?P<rest>.*)$", not_found),
]
