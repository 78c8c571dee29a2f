"""The SAM template as the local stack sees it: functions, tables, layers and the REST API.

The YAML is read with a SafeLoader that understands CloudFormation short tags (``!Ref``, ``!Sub``,
``!GetAtt`` ...), then the intrinsic functions the local stack needs are resolved the way a deployment
would, with local stand-ins for what only CloudFormation knows: parameters take their ``Default``
(overridable), pseudo parameters are fixed local values, a resource's ``Ref`` is a plausible local
physical name (``{stack}-{LogicalId}`` for a table) and ``Fn::GetAtt X.Arn`` a plausible ARN.

It knows the intrinsic functions ``template.yaml`` uses (``Ref``, ``Condition``, ``Fn::GetAtt``,
``Fn::Sub``, ``Fn::Equals``, ``Fn::Not``); another one is a ``TemplateError`` naming it. Only what the
local stack reads is resolved, so an intrinsic it cannot know (an ``Fn::ImportValue`` somewhere in an
IAM policy, say) does not stop it. SAM's ``Globals`` are merged into each function as
SAM does: maps merged key by key, lists concatenated (globals first), scalars overridden.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"

STACK_NAME = "activity-tracker-local"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"

# Lambda's own defaults, for properties neither the function nor Globals set.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128

FUNCTION_TYPES = frozenset({"AWS::Serverless::Function"})
LAYER_TYPES = frozenset({"AWS::Serverless::LayerVersion"})
TABLE_TYPES = frozenset({"AWS::DynamoDB::Table"})

API_TYPES = frozenset({"AWS::Serverless::Api"})
IMPLICIT_API_ID = "ServerlessRestApi"

# Properties that, when set, are the physical name a resource's Ref returns.
_NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Scheduler::Schedule": "Name",
}
_ARN_FORMATS = {
    "AWS::DynamoDB::Table": "arn:{p}:dynamodb:{r}:{a}:table/{name}",
    "AWS::Serverless::Function": "arn:{p}:lambda:{r}:{a}:function:{name}",
    "AWS::Lambda::Function": "arn:{p}:lambda:{r}:{a}:function:{name}",
    "AWS::Serverless::LayerVersion": "arn:{p}:lambda:{r}:{a}:layer:{name}:1",
    "AWS::Logs::LogGroup": "arn:{p}:logs:{r}:{a}:log-group:{name}:*",
    "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{name}",
    "AWS::Events::Rule": "arn:{p}:events:{r}:{a}:rule/{name}",
    "AWS::Scheduler::Schedule": "arn:{p}:scheduler:{r}:{a}:schedule/default/{name}",
    "AWS::SQS::Queue": "arn:{p}:sqs:{r}:{a}:{name}",
    "AWS::SNS::Topic": "arn:{p}:sns:{r}:{a}:{name}",
    "AWS::S3::Bucket": "arn:{p}:s3:::{name}",
}
# The DynamoDB CreateTable arguments a CloudFormation table passes through unchanged (or nearly).
_CREATE_TABLE_PROPERTIES = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "StreamSpecification",
)


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve or does not support."""


# ---------------------------------------------------------------- YAML


try:  # libyaml's parser reads the template about eight times as fast as PyYAML's pure-Python one
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - a PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class CfnLoader(_SafeLoader):
    """A SafeLoader that turns CloudFormation short tags into their long form (``!Sub x`` -> ``{"Fn::Sub": x}``)."""


def _construct_short_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise TemplateError(f"Unexpected YAML node for !{tag_suffix}")
    if tag_suffix in {"Ref", "Condition"}:
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_short_tag)


def read_yaml(path: Path) -> dict[str, Any]:
    """The template as plain data, intrinsics in their long form."""
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader subclass  # nosec B506
    if not isinstance(document, dict):
        raise TemplateError(f"{path} is not a CloudFormation template")
    return document


# ---------------------------------------------------------------- specs


@dataclass(frozen=True)
class Route:
    """One ``Type: Api`` event: ``path`` as written in the template (``/v1/users/{user_id}/events``)."""

    method: str
    path: str
    auth: bool
    event_name: str = ""
    api_key_required: bool = False
    """``Auth.ApiKeyRequired`` of the route, else of the API: the route is metered by a usage plan."""


@dataclass(frozen=True)
class ScheduleSpec:
    """One ``Type: Schedule`` (EventBridge rule) or ``Type: ScheduleV2`` (EventBridge Scheduler) event."""

    name: str
    type: str
    expression: str
    input: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_uri: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    layer_paths: tuple[Path, ...]
    routes: tuple[Route, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
    architectures: tuple[str, ...] = ("x86_64",)
    async_retries: int = 2
    """``EventInvokeConfig.MaximumRetryAttempts``: retries of an asynchronous invocation that failed."""

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_function(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    create_kwargs: dict[str, Any]
    """Arguments of DynamoDB ``CreateTable``, ``TableName`` included."""
    time_to_live: dict[str, Any] | None = None
    """The CloudFormation ``TimeToLiveSpecification`` (``AttributeName``, ``Enabled``), if any."""


@dataclass(frozen=True)
class GatewayResponseSpec:
    status: int | None
    """None when the template does not set ``StatusCode`` (API Gateway's default for the type applies)."""
    headers: dict[str, str]
    """Static values without their single quotes; other values (``method.request.header.X``) as written."""
    template: str | None
    """The ``application/json`` response template."""


@dataclass(frozen=True)
class UsagePlanSpec:
    """The usage plan SAM makes from the API's ``Auth.UsagePlan``, as CreateUsagePlan arguments."""

    name: str
    throttle: dict[str, Any] | None = None
    """``{"rateLimit": float, "burstLimit": int}``"""
    quota: dict[str, Any] | None = None
    """``{"limit": int, "offset": int, "period": "DAY|WEEK|MONTH"}``"""


@dataclass(frozen=True)
class ApiSpec:
    logical_id: str
    api_id: str
    stage: str
    authorizer_function: str | None
    """Logical id of the default Lambda authorizer's function; None when the API has no authorizer."""
    authorizer_type: str
    """``REQUEST`` or ``TOKEN`` (SAM's ``FunctionPayloadType``)."""
    identity_header: str | None
    """The header API Gateway requires before it calls the authorizer (401 when it is missing)."""
    gateway_responses: dict[str, GatewayResponseSpec]
    api_key_required: bool = False
    api_key_source: str = "HEADER"
    """``AUTHORIZER``: the authorizer's ``usageIdentifierKey`` is the API key (for usage plans)."""
    usage_plan: UsagePlanSpec | None = None


@dataclass(frozen=True)
class Template:
    path: Path
    parameters: dict[str, Any]
    region: str
    account_id: str
    stack_name: str
    partition: str
    functions: dict[str, FunctionSpec]
    tables: dict[str, TableSpec]
    layers: dict[str, Path]
    """Logical id -> ContentUri directory of each ``AWS::Serverless::LayerVersion``."""
    api: ApiSpec | None

    def resolver(self) -> Resolver:
        """A resolver of the template's intrinsics with the stand-ins its specs were made with, for the
        resources the specs do not cover (streams, the WebSocket API, secrets, buckets)."""
        return Resolver(read_yaml(self.path), self.parameters, pseudo_parameters(self.region))

    @property
    def root(self) -> Path:
        return self.path.parent


# ---------------------------------------------------------------- intrinsics

_NO_VALUE = object()  # AWS::NoValue: the property or list item disappears
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def rest_api_id(stack_name: str, logical_id: str) -> str:
    """A stable stand-in for a REST API id (10 lowercase alphanumerics)."""
    return hashlib.sha256(f"{stack_name}/{logical_id}".encode()).hexdigest()[:10]


def cfn_string(value: Any) -> str:
    """A value as CloudFormation puts it in a string: booleans lower-case, lists comma-joined."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cfn_string(item) for item in value)
    return str(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class Resolver:
    """Resolves CloudFormation intrinsic functions against local stand-ins for what CloudFormation knows."""

    def __init__(self, document: Mapping[str, Any], parameters: Mapping[str, Any], pseudo: Mapping[str, Any]) -> None:
        self.resources: dict[str, Any] = document.get("Resources") or {}
        self._condition_definitions: dict[str, Any] = document.get("Conditions") or {}
        self._conditions: dict[str, bool] = {}
        self._refs = {**pseudo, **parameters}
        self._naming: set[str] = set()
        # Only the functions template.yaml uses: any other is a TemplateError naming it.
        self._functions: dict[str, Callable[[Any], Any]] = {
            "GetAtt": self._get_att,
            "Sub": self._sub,
            "Equals": lambda arg: cfn_string(self.resolve(arg[0])) == cfn_string(self.resolve(arg[1])),
            "Not": lambda arg: not self._bool(_as_list(arg)[0]),
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(str(self.resolve(argument)))
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                function = self._functions.get(key[4:])
                if function is None:
                    raise TemplateError(f"{key} is not supported by the local stack")
                return function(argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._refs:
            if self._refs[name] is None:
                raise TemplateError(f"Parameter {name} has no Default: pass a value for it")
            return self._refs[name]
        if name in self.resources:
            return self.physical_id(name)
        raise TemplateError(f"Ref to {name!r}, which is neither a parameter nor a resource")

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self._condition_definitions:
                raise TemplateError(f"Unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(self._condition_definitions[name]))
        return self._conditions[name]

    def exists(self, logical_id: str) -> bool:
        """False for a resource whose ``Condition`` is false: CloudFormation does not create it."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def physical_id(self, logical_id: str) -> str:
        """What ``Ref`` returns locally: the resource's explicit name, or a plausible generated one."""
        resource = self._resource(logical_id)
        resource_type = resource.get("Type", "")
        if resource_type in LAYER_TYPES:
            return self.arn(logical_id)
        if resource_type in API_TYPES or resource_type == "AWS::ApiGateway::RestApi":
            return rest_api_id(self._refs["AWS::StackName"], logical_id)
        name_property = _NAME_PROPERTIES.get(resource_type)
        explicit = (resource.get("Properties") or {}).get(name_property) if name_property else None
        if explicit is None:
            return self._generated_name(logical_id)
        if logical_id in self._naming:
            raise TemplateError(f"The name of {logical_id} refers to itself")
        self._naming.add(logical_id)
        try:
            return str(self.resolve(explicit))
        finally:
            self._naming.discard(logical_id)

    def arn(self, logical_id: str) -> str:
        resource_type = self._resource(logical_id).get("Type", "")
        # A layer's Ref is already its ARN: its name part is the generated one.
        name = self._generated_name(logical_id) if resource_type in LAYER_TYPES else self.physical_id(logical_id)
        service = resource_type.split("::")[1].lower() if resource_type.count("::") == 2 else "unknown"
        template = _ARN_FORMATS.get(resource_type, f"arn:{{p}}:{service}:{{r}}:{{a}}:{{name}}")
        return template.format(
            p=self._refs["AWS::Partition"], r=self._refs["AWS::Region"], a=self._refs["AWS::AccountId"], name=name
        )

    def _generated_name(self, logical_id: str) -> str:
        return f"{self._refs['AWS::StackName']}-{logical_id}"

    def _resource(self, logical_id: str) -> dict[str, Any]:
        if logical_id not in self.resources:
            raise TemplateError(f"Unknown resource {logical_id!r}")
        resource: dict[str, Any] = self.resources[logical_id]
        return resource

    def _get_att(self, argument: Any) -> Any:
        logical_id, attribute = (str(part) for part in self.resolve(argument))
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/1970-01-01T00:00:00.000"
        return self.physical_id(logical_id)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument[0], self.resolve(argument[1])) if isinstance(argument, list) else (argument, {})

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return cfn_string(variables[name])
            if "." in name:
                return cfn_string(self._get_att(name.split(".", 1)))
            return cfn_string(self.ref(name))

        return _SUB_VARIABLE.sub(replace, str(text))

    def _bool(self, value: Any) -> bool:
        resolved = self.resolve(value)
        if isinstance(resolved, str):
            return resolved.lower() == "true"
        return bool(resolved)


# ---------------------------------------------------------------- loading


def _merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals merge: maps merge key by key, lists concatenate (globals first), the function wins otherwise."""
    if _is_plain_map(global_value) and _is_plain_map(local_value):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return global_value + local_value
    return local_value


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return key in {"Ref", "Condition"} or key.startswith("Fn::")


def _is_plain_map(value: Any) -> bool:
    """A dict that is not an intrinsic function (SAM merges an intrinsic like a scalar)."""
    return isinstance(value, dict) and not _is_intrinsic(value)


def _parameters(document: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    declared: dict[str, Any] = document.get("Parameters") or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"Unknown template parameters: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        value = overrides.get(name, declaration.get("Default"))
        if value is None:
            values[name] = None
            continue
        allowed = [str(v) for v in declaration.get("AllowedValues") or []]
        if allowed and str(value) not in allowed:
            raise TemplateError(f"Parameter {name}={value!r} is not one of {allowed}")
        # A parameter's Ref is a string (a list for the list types), whatever the YAML type of its Default.
        is_list = declaration.get("Type", "String").startswith(("List<", "CommaDelimitedList"))
        values[name] = [v.strip() for v in str(value).split(",")] if is_list else cfn_string(value)
    return values


def _is_true(value: Any) -> bool:
    return value is True or cfn_string(value).lower() == "true"


def _strip_quotes(value: str) -> str:
    """``"'1'"`` -> ``"1"``: API Gateway's static mapping values are single-quoted."""
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


def pseudo_parameters(region: str) -> dict[str, Any]:
    """CloudFormation's pseudo parameters, as the local stack's stand-ins."""
    return {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::StackName": STACK_NAME,
        "AWS::StackId": f"arn:{PARTITION}:cloudformation:{region}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
        "AWS::Partition": PARTITION,
        "AWS::URLSuffix": URL_SUFFIX,
        "AWS::NotificationARNs": [],
    }


class _Loader:
    """Builds the specs of one template; holds what they share (the resolver, Globals, paths)."""

    def __init__(self, path: Path, parameters: Mapping[str, Any], region: str | None) -> None:
        self.path = path
        self.document = read_yaml(path)
        self.parameters = _parameters(self.document, parameters)
        region = region or os.environ.get("AWS_REGION") or DEFAULT_REGION
        self.pseudo = pseudo_parameters(region)
        self.resolver = Resolver(self.document, self.parameters, self.pseudo)
        self.globals: dict[str, Any] = self.document.get("Globals") or {}
        self.default_authorizer: str | None = None  # set by api()

    def of_type(self, types: frozenset[str]) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.resolver.resources.items()
            if resource.get("Type") in types and self.resolver.exists(logical_id)
        }

    def local_path(self, value: Any, what: str) -> Path:
        resolved = self.resolver.resolve(value)
        if not isinstance(resolved, str):
            raise TemplateError(f"{what} must be a local path, not {resolved!r}")
        return (self.path.parent / resolved).resolve()

    def load(self) -> Template:
        layers = {
            logical_id: self.local_path(
                (resource.get("Properties") or {}).get("ContentUri"), f"{logical_id}.ContentUri"
            )
            for logical_id, resource in self.of_type(LAYER_TYPES).items()
        }
        api = self.api()
        functions = {
            logical_id: self.function(logical_id, resource, layers, api)
            for logical_id, resource in self.of_type(FUNCTION_TYPES).items()
        }
        if api is not None and api.authorizer_function is not None and api.authorizer_function not in functions:
            raise TemplateError(f"The authorizer function {api.authorizer_function} is not a function of the template")
        tables = {
            logical_id: self.table(logical_id, resource) for logical_id, resource in self.of_type(TABLE_TYPES).items()
        }
        return Template(
            path=self.path,
            parameters=self.parameters,
            region=self.pseudo["AWS::Region"],
            account_id=self.pseudo["AWS::AccountId"],
            stack_name=self.pseudo["AWS::StackName"],
            partition=self.pseudo["AWS::Partition"],
            functions=functions,
            tables=tables,
            layers=layers,
            api=api,
        )

    # ------------------------------------------------------------ functions

    def function(
        self, logical_id: str, resource: dict[str, Any], layers: dict[str, Path], api: ApiSpec | None
    ) -> FunctionSpec:
        properties = _merge_globals(self.globals.get("Function") or {}, resource.get("Properties") or {})
        if "CodeUri" not in properties:
            raise TemplateError(f"{logical_id}: the local stack needs a local CodeUri (InlineCode is not supported)")
        handler = str(self.resolver.resolve(properties.get("Handler", "")))
        if "." not in handler:
            raise TemplateError(f"{logical_id}: Handler must be module.function, not {handler!r}")
        variables = self.resolver.resolve((properties.get("Environment") or {}).get("Variables") or {})
        events: dict[str, Any] = properties.get("Events") or {}
        return FunctionSpec(
            logical_id=logical_id,
            name=self.resolver.physical_id(logical_id),
            arn=self.resolver.arn(logical_id),
            code_uri=self.local_path(properties["CodeUri"], f"{logical_id}.CodeUri"),
            handler=handler,
            timeout=int(self.resolver.resolve(properties.get("Timeout", DEFAULT_TIMEOUT))),
            memory=int(self.resolver.resolve(properties.get("MemorySize", DEFAULT_MEMORY))),
            environment={str(name): cfn_string(value) for name, value in variables.items()},
            layer_paths=self.function_layers(logical_id, properties.get("Layers") or [], layers),
            routes=tuple(
                self.route(logical_id, name, event.get("Properties") or {}, api)
                for name, event in events.items()
                if event.get("Type") == "Api"
            ),
            schedules=tuple(
                self.schedule(name, event)
                for name, event in events.items()
                if event.get("Type") in {"Schedule", "ScheduleV2"}
            ),
            architectures=tuple(
                str(arch) for arch in self.resolver.resolve(properties.get("Architectures", ["x86_64"]))
            ),
            async_retries=int(
                self.resolver.resolve((properties.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2))
            ),
        )

    def function_layers(self, logical_id: str, raw_layers: list[Any], layers: dict[str, Path]) -> tuple[Path, ...]:
        paths = []
        for layer in raw_layers:
            target = layer.get("Ref") if isinstance(layer, dict) else None
            if target in layers:
                paths.append(layers[target])
            else:
                logger.warning("%s: layer %r is not in this template, so not available locally", logical_id, layer)
        return tuple(paths)

    def route(self, logical_id: str, event_name: str, properties: dict[str, Any], api: ApiSpec | None) -> Route:
        if api is None:
            raise TemplateError(f"{logical_id}.{event_name}: an Api event without a REST API")
        rest_api = properties.get("RestApiId")
        api_of_route = rest_api.get("Ref") if isinstance(rest_api, dict) else rest_api
        if (api_of_route or IMPLICIT_API_ID) != api.logical_id:
            raise TemplateError(f"{logical_id}.{event_name}: the local stack serves one REST API, {api.logical_id}")
        route_auth = properties.get("Auth") or {}
        authorizer = route_auth.get("Authorizer")
        if authorizer not in {None, "NONE", self.default_authorizer}:
            raise TemplateError(f"{logical_id}.{event_name}: only the API's default authorizer is supported locally")
        auth = api.authorizer_function is not None if authorizer is None else authorizer != "NONE"
        return Route(
            method=str(self.resolver.resolve(properties["Method"])).upper(),
            path=str(self.resolver.resolve(properties["Path"])),
            auth=auth,
            event_name=event_name,
            api_key_required=_is_true(self.resolver.resolve(route_auth.get("ApiKeyRequired", api.api_key_required))),
        )

    def schedule(self, name: str, event: dict[str, Any]) -> ScheduleSpec:
        properties = self.resolver.resolve(event.get("Properties") or {})
        enabled = properties.get("Enabled", True) is not False and properties.get("State", "ENABLED") != "DISABLED"
        raw_input = properties.get("Input")
        return ScheduleSpec(
            name=name,
            type=event["Type"],
            expression=str(properties.get("Schedule") or properties.get("ScheduleExpression") or ""),
            input=raw_input if raw_input is None or isinstance(raw_input, str) else json.dumps(raw_input),
            enabled=enabled,
        )

    # ------------------------------------------------------------ API

    def api_resource(self) -> tuple[str, dict[str, Any]] | None:
        """The one REST API: the explicit ``AWS::Serverless::Api``, or SAM's implicit one."""
        apis = self.of_type(API_TYPES)
        if len(apis) > 1:
            raise TemplateError(f"The local stack serves one REST API; the template has {', '.join(apis)}")
        global_properties = self.globals.get("Api") or {}
        if apis:
            ((logical_id, resource),) = apis.items()
            return logical_id, _merge_globals(global_properties, resource.get("Properties") or {})
        has_routes = any(
            event.get("Type") == "Api"
            for resource in self.of_type(FUNCTION_TYPES).values()
            for event in ((resource.get("Properties") or {}).get("Events") or {}).values()
        )
        return (IMPLICIT_API_ID, {"StageName": "Prod", **global_properties}) if has_routes else None

    def api(self) -> ApiSpec | None:
        found = self.api_resource()
        if found is None:
            return None
        logical_id, properties = found
        auth = properties.get("Auth") or {}
        authorizer_function, authorizer_type, identity_header = None, "REQUEST", None
        default = auth.get("DefaultAuthorizer")
        self.default_authorizer = str(default) if default else None
        if default:
            authorizer = (auth.get("Authorizers") or {}).get(default)
            if authorizer is None or "FunctionArn" not in authorizer:
                raise TemplateError(f"{logical_id}: DefaultAuthorizer {default} must be a Lambda authorizer of the API")
            authorizer_function = self.function_of_arn(self.resolver.resolve(authorizer["FunctionArn"]))
            authorizer_type = str(authorizer.get("FunctionPayloadType", "TOKEN")).upper()
            identity = authorizer.get("Identity") or {}
            if authorizer_type == "TOKEN":
                identity_header = str(identity.get("Header", "Authorization"))
            elif identity.get("Headers"):
                identity_header = str(identity["Headers"][0])
        return ApiSpec(
            logical_id=logical_id,
            api_id=rest_api_id(STACK_NAME, logical_id),
            stage=str(self.resolver.resolve(properties.get("StageName", "Prod"))),
            authorizer_function=authorizer_function,
            authorizer_type=authorizer_type,
            identity_header=identity_header,
            gateway_responses={
                str(response_type): self.gateway_response(spec or {})
                for response_type, spec in (properties.get("GatewayResponses") or {}).items()
            },
            api_key_required=_is_true(self.resolver.resolve(auth.get("ApiKeyRequired", False))),
            api_key_source=str(self.resolver.resolve(properties.get("ApiKeySourceType", "HEADER"))),
            usage_plan=self.usage_plan(logical_id, auth.get("UsagePlan") or {}),
        )

    def usage_plan(self, api_logical_id: str, raw: dict[str, Any]) -> UsagePlanSpec | None:
        plan = self.resolver.resolve(raw)
        if plan.get("CreateUsagePlan", "NONE") == "NONE":
            return None
        throttle, quota = plan.get("Throttle"), plan.get("Quota")
        return UsagePlanSpec(
            name=str(plan.get("UsagePlanName") or f"{STACK_NAME}-{api_logical_id}UsagePlan"),
            throttle=None
            if not throttle
            else {"rateLimit": float(throttle["RateLimit"]), "burstLimit": int(throttle["BurstLimit"])},
            quota=None
            if not quota
            else {"limit": int(quota["Limit"]), "offset": int(quota.get("Offset", 0)), "period": str(quota["Period"])},
        )

    def function_of_arn(self, arn: Any) -> str:
        for logical_id in self.of_type(FUNCTION_TYPES):
            if self.resolver.arn(logical_id) == arn:
                return logical_id
        raise TemplateError(f"The authorizer {arn!r} is not a function of this template")

    def gateway_response(self, spec: dict[str, Any]) -> GatewayResponseSpec:
        resolved = self.resolver.resolve(spec)
        headers = (resolved.get("ResponseParameters") or {}).get("Headers") or {}
        templates: dict[str, Any] = resolved.get("ResponseTemplates") or {}
        template = templates.get("application/json", next(iter(templates.values()), None))
        status = resolved.get("StatusCode")
        return GatewayResponseSpec(
            status=int(status) if status is not None else None,
            headers={str(name): _strip_quotes(str(value)) for name, value in headers.items()},
            template=None if template is None else str(template),
        )

    # ------------------------------------------------------------ tables

    def table(self, logical_id: str, resource: dict[str, Any]) -> TableSpec:
        properties = self.resolver.resolve(resource.get("Properties") or {})
        kwargs: dict[str, Any] = {"TableName": self.resolver.physical_id(logical_id)}
        kwargs.update({key: properties[key] for key in _CREATE_TABLE_PROPERTIES if key in properties})
        # The few places where CloudFormation's shape is not CreateTable's.
        if "StreamSpecification" in kwargs:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **kwargs["StreamSpecification"]}
        if "ProvisionedThroughput" in kwargs:
            kwargs["ProvisionedThroughput"] = _capacity(kwargs["ProvisionedThroughput"])
        for index_key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if index_key in kwargs:
                kwargs[index_key] = [_index(index) for index in kwargs[index_key]]
        return TableSpec(
            logical_id=logical_id,
            name=kwargs["TableName"],
            create_kwargs=kwargs,
            time_to_live=properties.get("TimeToLiveSpecification"),
        )


def _capacity(throughput: dict[str, Any]) -> dict[str, int]:
    """Capacity units are numbers for CreateTable, where the template may give strings (parameters)."""
    return {key: int(value) for key, value in throughput.items()}


def _index(index: dict[str, Any]) -> dict[str, Any]:
    converted = {key: value for key, value in index.items() if key != "ContributorInsightsSpecification"}
    if "ProvisionedThroughput" in converted:
        converted["ProvisionedThroughput"] = _capacity(converted["ProvisionedThroughput"])
    return converted


def load_template(
    path: Path | str = DEFAULT_TEMPLATE,
    parameters: Mapping[str, Any] | None = None,
    region: str | None = None,
) -> Template:
    """The template at ``path``, resolved for a local run; ``parameters`` override the Defaults."""
    return _Loader(Path(path).resolve(), parameters or {}, region).load()
