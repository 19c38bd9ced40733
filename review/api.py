"""``GET /api/v1/reports/response-times/``: the response-time report as JSON."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors
from .access import user_may_review


class DurationStatsSerializer(serializers.Serializer):
    key = serializers.JSONField(allow_null=True)
    code = serializers.CharField()
    label = serializers.CharField()
    incidents = serializers.IntegerField()
    compliant = serializers.IntegerField()
    compliance_pct = serializers.FloatField(allow_null=True)
    responded_pct = serializers.FloatField(allow_null=True)
    controlled_pct = serializers.FloatField(allow_null=True)
    handled_pct = serializers.FloatField(allow_null=True)
    to_response_s_median = serializers.FloatField(allow_null=True)
    to_response_s_p90 = serializers.FloatField(allow_null=True)
    to_control_s_median = serializers.FloatField(allow_null=True)
    to_control_s_p90 = serializers.FloatField(allow_null=True)
    to_handling_s_median = serializers.FloatField(allow_null=True)
    to_handling_s_p90 = serializers.FloatField(allow_null=True)


class ResponseTimesSerializer(serializers.Serializer):
    region = serializers.DictField(allow_null=True)
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    kind = serializers.CharField(allow_null=True)
    targets_s = serializers.DictField(child=serializers.IntegerField())
    grouped_by = serializers.CharField(allow_null=True, help_text="district | street | null")
    total = DurationStatsSerializer()
    areas = DurationStatsSerializer(many=True)
    weeks = DurationStatsSerializer(many=True)


class ResponseTimesView(APIView):
    """Response times and 1-3-5 compliance for a region and time range.

    Durations are whole seconds from discovery (rounded up); medians and p90 are
    PostgreSQL ``percentile_cont`` values. ``areas`` breaks the region down one
    level (a city by district, a district by street); ``weeks`` is the trend.
    """

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "district",
                OpenApiTypes.STR,
                description="区划代码 (district or street code); default: your whole scope",
            ),
            OpenApiParameter("street", OpenApiTypes.STR, description="街道/镇代码"),
            OpenApiParameter("kind", OpenApiTypes.STR, description="警情类型"),
            OpenApiParameter(
                "since",
                OpenApiTypes.STR,
                description="YYYY-MM-DD or ISO 8601; default 90 days before until",
            ),
            OpenApiParameter(
                "until",
                OpenApiTypes.STR,
                description="YYYY-MM-DD (inclusive) or ISO 8601; default now",
            ),
        ],
        responses={
            200: ResponseTimesSerializer,
            400: OpenApiResponse(description="bad date range, unknown region or kind"),
            403: OpenApiResponse(description="region outside your scope, or no review role"),
        },
    )
    def get(self, request):
        if not user_may_review(request.user):
            raise PermissionDenied(_("您没有复盘权限。"))
        params = {
            k: request.query_params.get(k) or None
            for k in ("district", "street", "kind", "since", "until")
        }
        try:
            filters = selectors.incident_filter_build(user=request.user, **params)
        except selectors.ReviewInputError as exc:
            raise ValidationError(exc.errors) from exc
        except selectors.OutOfScope as exc:
            raise PermissionDenied(_("该区域不在您的辖区内。")) from exc
        report = selectors.response_report(user=request.user, filters=filters, with_units=False)
        return Response(report.as_dict())
