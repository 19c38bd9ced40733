"""REST edges for incidents: parse, call one service or selector, render."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from . import inputs, selectors, services
from .models import Incident, IncidentEvent
from .ranking import rank_units


def _as_drf_error(exc: DjangoValidationError) -> serializers.ValidationError:
    if hasattr(exc, "message_dict"):
        return serializers.ValidationError(exc.message_dict)
    return serializers.ValidationError({"non_field_errors": exc.messages})


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that names its offset: a naive time from an integration is
    ambiguous (whose clock?), so it is refused instead of guessed."""

    default_error_messages = {
        "naive": gettext_lazy("时间须带时区，例如 2024-05-01T12:00:00+08:00。"),
    }

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


class IncidentCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Incident.Kind.choices)
    severity = serializers.ChoiceField(choices=Incident.Severity.choices, default=2)
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lon = serializers.FloatField(min_value=-180, max_value=180)
    address = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)
    description = serializers.CharField(
        max_length=2000, required=False, default="", allow_blank=True
    )
    external_id = serializers.CharField(max_length=64, required=False, allow_null=True)
    discovered_at = AwareDateTimeField(required=False, allow_null=True)
    source = serializers.ChoiceField(
        choices=[Incident.Source.CAD, Incident.Source.CONSOLE], default=Incident.Source.CAD
    )


class CandidateSerializer(serializers.Serializer):
    unit = serializers.IntegerField(source="unit_id")
    distance_m = serializers.FloatField()
    eta_s = serializers.IntegerField()
    kit_fit = serializers.BooleanField()
    on_duty = serializers.IntegerField()


class EventSerializer(serializers.ModelSerializer):
    type_display = serializers.CharField(source="get_type_display")
    unit_code = serializers.CharField(source="unit.code", default=None)
    member_name = serializers.CharField(source="member.name", default=None)

    class Meta:
        model = IncidentEvent
        fields = [
            "id",
            "seq",
            "type",
            "type_display",
            "unit",
            "unit_code",
            "member",
            "member_name",
            "data",
            "created_at",
        ]


class IncidentSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    region = serializers.CharField(source="region.code", default=None)

    class Meta:
        model = Incident
        fields = [
            "id",
            "kind",
            "kind_display",
            "severity",
            "lat",
            "lon",
            "address",
            "description",
            "source",
            "external_id",
            "region",
            "status",
            "is_drill",
            "flagged",
            "discovered_at",
            "received_at",
            "responded_at",
            "controlled_at",
            "handled_at",
        ]


class IncidentDetailSerializer(IncidentSerializer):
    durations = serializers.SerializerMethodField()
    compliance = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "durations", "compliance", "timeline"]

    def get_durations(self, obj) -> dict:
        return selectors.incident_durations(obj)

    def get_compliance(self, obj) -> dict:
        return selectors.incident_compliance(obj)

    def get_timeline(self, obj) -> list:
        return EventSerializer(selectors.incident_timeline(incident=obj), many=True).data


class ActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=[(a, a) for a in services.ACTIONS])
    lat = serializers.FloatField(min_value=-90, max_value=90, required=False)
    lon = serializers.FloatField(min_value=-180, max_value=180, required=False)

    def validate(self, attrs):
        if ("lat" in attrs) != ("lon" in attrs):
            missing = "lon" if "lat" in attrs else "lat"
            raise serializers.ValidationError({missing: _("位置须同时给出纬度和经度。")})
        return attrs


class MemberReportSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Incident.Kind.choices)
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lon = serializers.FloatField(min_value=-180, max_value=180)
    description = serializers.CharField(
        max_length=2000, required=False, default="", allow_blank=True
    )


# Outside the caller's area: forbidden; an external_id taken: a conflict.
_INTAKE_REFUSED = {
    "outside_scope": status.HTTP_403_FORBIDDEN,
    "external_id_conflict": status.HTTP_409_CONFLICT,
}


# --- what intake answers, for the OpenAPI schema (the views build these bodies) ---------


class IntakeWaveSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="wave number, 1 for the first alert")
    radius_m = serializers.IntegerField(help_text="search radius of this wave, metres")


class IntakeResponseSerializer(serializers.Serializer):
    incident = IncidentSerializer()
    created = serializers.BooleanField(
        help_text="false when the same external_id was raised before: the same incident"
    )
    wave = IntakeWaveSerializer(allow_null=True, help_text="null when no unit could be alerted")
    candidates = CandidateSerializer(many=True, help_text="the units alerted, nearest first")


class RefusedSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable reason, e.g. outside_scope")
    detail = serializers.CharField(help_text="the reason for people, in the request's language")


_INTAKE_RESPONSES = {
    201: IntakeResponseSerializer,
    200: IntakeResponseSerializer,
    403: RefusedSerializer,
    409: RefusedSerializer,
}


def _incident_id(pk) -> int:
    """The URL's incident id, or 404 (the router lets any path segment through)."""
    try:
        value = int(pk)
    except (TypeError, ValueError) as exc:
        raise NotFound() from exc
    if not inputs.id_in_range(value):  # past a 64-bit key: the driver would raise
        raise NotFound()
    return value


class IncidentViewSet(viewsets.GenericViewSet):
    queryset = Incident.objects.none()
    serializer_class = IncidentSerializer
    filter_backends: list = []

    def handle_exception(self, exc):
        # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE only when the
        # parser reads it, as a SuspiciousOperation that would become an HTML 400.
        if isinstance(exc, RequestDataTooBig):
            return Response(
                {"code": "too_large", "detail": _("请求体过大。")},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        return super().handle_exception(exc)

    def _intake_response(self, result: services.IntakeResult) -> Response:
        body = {
            "incident": IncidentSerializer(result.incident).data,
            "created": result.created,
            "wave": {"number": result.wave.number, "radius_m": result.wave.radius_m}
            if result.wave
            else None,
            "candidates": CandidateSerializer(result.candidates, many=True).data,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else 200)

    @extend_schema(request=IncidentCreateSerializer, responses=_INTAKE_RESPONSES)
    def create(self, request):
        if not selectors.user_may_raise_incidents(user=request.user):
            raise PermissionDenied(_("只有接处警系统或指挥、管理人员可以录入警情。"))
        s = IncidentCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            result = services.incident_create(created_by=request.user, **s.validated_data)
        except DjangoValidationError as exc:
            raise _as_drf_error(exc) from exc
        except services.IntakeRefused as exc:
            return Response(
                {"code": exc.code, "detail": exc.message}, status=_INTAKE_REFUSED[exc.code]
            )
        return self._intake_response(result)

    @extend_schema(request=MemberReportSerializer, responses={201: IntakeResponseSerializer})
    @action(detail=False, methods=["post"])
    def report(self, request):
        """One-button report from a member's phone: discovered now, here."""
        member = selectors.member_for_user(user=request.user)
        if member is None:
            raise PermissionDenied(_("只有队员可以一键报警。"))
        if not member.is_active:
            raise PermissionDenied(_("该队员已停用。"))
        s = MemberReportSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            result = services.incident_create(
                source=Incident.Source.MEMBER, reported_by=member, **s.validated_data
            )
        except DjangoValidationError as exc:
            raise _as_drf_error(exc) from exc
        return self._intake_response(result)

    @extend_schema(responses=IncidentDetailSerializer)
    def retrieve(self, request, pk=None):
        incident = self._visible(request, pk)
        return Response(IncidentDetailSerializer(incident).data)

    def list(self, request):
        qs = selectors.incident_list(user=request.user).order_by("-received_at")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(IncidentSerializer(page, many=True).data)

    @extend_schema(request=ActionSerializer, responses={200: dict})
    @action(detail=True, methods=["post"])
    def actions(self, request, pk=None):
        """accept / decline / on_site / handled, for clients without a websocket."""
        member = selectors.member_for_user(user=request.user)
        if member is None:
            raise PermissionDenied(_("只有队员可以执行该操作。"))
        incident_id = _incident_id(pk)
        s = ActionSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            dispatch = services.dispatch_act(
                incident_id=incident_id, member=member, **s.validated_data
            )
        except services.ActionRefused as exc:
            code = status.HTTP_404_NOT_FOUND if exc.code == "not_alerted" else 409
            return Response({"code": exc.code, "detail": exc.message}, status=code)
        return Response({"incident_id": incident_id, "dispatch_status": dispatch.status})

    def _visible(self, request, pk) -> Incident:
        incident = selectors.incident_get_for_user(user=request.user, incident_id=_incident_id(pk))
        if incident is None:
            raise NotFound()
        return incident


class NearbyQuerySerializer(serializers.Serializer):
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lon = serializers.FloatField(min_value=-180, max_value=180)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)
    radius_m = serializers.FloatField(min_value=1, max_value=100_000, required=False)
    kind = serializers.ChoiceField(choices=Incident.Kind.choices, required=False)


class NearbyUnitsView(viewsets.ViewSet):
    @extend_schema(parameters=[NearbyQuerySerializer], responses={200: dict})
    def list(self, request):
        """Units ranked by distance and on-foot ETA from a point (within the user's scope)."""
        q = NearbyQuerySerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        v = q.validated_data
        candidates = rank_units(
            lat=v["lat"],
            lon=v["lon"],
            limit=v["limit"],
            radius_m=v.get("radius_m"),
            incident_kind=v.get("kind"),
            require_available=False,
        )
        units = selectors.units_for_candidates(
            user=request.user, unit_ids=[c.unit_id for c in candidates]
        )
        results = []
        for c in candidates:
            unit = units.get(c.unit_id)
            if unit is None:  # outside the user's scope
                continue
            results.append(
                {
                    "id": unit.pk,
                    "code": unit.code,
                    "name": unit.name,
                    "kind": unit.kind,
                    "lat": unit.lat,
                    "lon": unit.lon,
                    "distance_m": round(c.distance_m, 1),
                    "eta_s": c.eta_s,
                    "on_duty_count": c.on_duty,
                    "available": c.available,
                    "kit_fit": c.kit_fit,
                    "kit": [
                        {"kind": e.kind, "quantity": e.quantity, "expires": e.expires}
                        for e in unit.equipment.all()
                    ],
                }
            )
        return Response({"count": len(results), "results": results})
