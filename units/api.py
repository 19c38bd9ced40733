"""REST edges for the roster: parse, call a selector, render."""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.middleware.csrf import get_token
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Equipment, Member, Region, Unit
from .scoping import phone_for, phone_mask
from .selectors import region_list, unit_get, unit_list


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


def _authenticate(request, data) -> object:
    s = CredentialsSerializer(data=data)
    s.is_valid(raise_exception=True)
    # The HttpRequest, not DRF's wrapper: django-axes marks a lockout on it.
    user = authenticate(request._request, **s.validated_data)
    if user is None:
        raise serializers.ValidationError({"non_field_errors": [_("用户名或密码错误。")]})
    return user


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text='send as "Authorization: Token <token>"')


class SessionSerializer(serializers.Serializer):
    csrftoken = serializers.CharField(help_text="also set as the csrftoken cookie")
    username = serializers.CharField(allow_null=True, help_text="null when not logged in")


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=CredentialsSerializer, responses={200: TokenSerializer})
    def post(self, request):
        user = _authenticate(request, request.data)
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class LoginView(APIView):
    """Session login for browsers.

    ``GET`` sets the ``csrftoken`` cookie (and returns it), so a page that was
    not rendered by Django can log in: it sends the token back in the
    ``X-CSRFToken`` header on ``POST`` here and on every later unsafe request.
    Login is CSRF-checked too, so another site cannot log a browser into an
    account of its choosing.
    """

    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={200: SessionSerializer})
    def get(self, request):
        user = request.user
        return Response(
            {
                # get_token() marks the cookie for CsrfViewMiddleware to set, as
                # ensure_csrf_cookie does.
                "csrftoken": get_token(request._request),
                "username": user.get_username() if user.is_authenticated else None,
            }
        )

    @extend_schema(request=CredentialsSerializer, responses={200: SessionSerializer})
    def post(self, request):
        SessionAuthentication().enforce_csrf(request)
        user = _authenticate(request, request.data)
        login(request, user)
        # login() rotated the CSRF token; the new cookie goes with this response.
        return Response({"username": user.get_username(), "csrftoken": get_token(request._request)})


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberSerializer(serializers.ModelSerializer):
    # Masked (138****1234) for roles that do not get members' phones (scoping).
    phone = serializers.SerializerMethodField()

    class Meta:
        model = Member
        fields = ["id", "name", "phone", "role", "on_duty", "duty_since", "trained", "is_active"]

    def get_phone(self, obj: Member) -> str:
        request = self.context.get("request")
        return phone_for(request.user, obj.phone) if request is not None else phone_mask(obj.phone)


class EquipmentSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)

    class Meta:
        model = Equipment
        fields = [
            "id",
            "kind",
            "kind_display",
            "quantity",
            "condition",
            "last_inspected",
            "expires",
        ]


class UnitListSerializer(serializers.ModelSerializer):
    region = serializers.CharField(source="region.code")
    region_name = serializers.CharField(source="region.name")
    on_duty_count = serializers.IntegerField()
    kit_complete = serializers.BooleanField()
    ready = serializers.BooleanField()

    class Meta:
        model = Unit
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "address",
            "lat",
            "lon",
            "region",
            "region_name",
            "is_active",
            "post_min",
            "on_duty_count",
            "kit_complete",
            "ready",
        ]


class UnitDetailSerializer(UnitListSerializer):
    members = MemberSerializer(many=True)
    equipment = EquipmentSerializer(many=True)

    class Meta(UnitListSerializer.Meta):
        fields = [*UnitListSerializer.Meta.fields, "members", "equipment"]


class UnitFilterSerializer(serializers.Serializer):
    # An empty parameter (a filter form left at "any") means no filter.
    region = serializers.CharField(
        required=False, allow_blank=True, help_text="region code; its whole subtree"
    )
    kind = serializers.ChoiceField(choices=Unit.Kind.choices, required=False, allow_blank=True)
    ready = serializers.BooleanField(required=False, allow_null=True, default=None)


class UnitViewSet(viewsets.GenericViewSet):
    serializer_class = UnitListSerializer
    queryset = Unit.objects.none()  # for the schema; real rows come from the selectors
    filter_backends: list = []

    @extend_schema(
        parameters=[
            OpenApiParameter("region", str, description="region code (its subtree)"),
            OpenApiParameter("kind", str, enum=Unit.Kind.values),
            OpenApiParameter("ready", bool),
        ]
    )
    def list(self, request):
        f = UnitFilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        region = None
        if code := f.validated_data.get("region"):
            region = region_list(user=request.user).filter(code=code).first()
            if region is None:
                raise serializers.ValidationError({"region": [_("未知或无权访问的区域。")]})
        qs = unit_list(
            user=request.user,
            region=region,
            kind=f.validated_data.get("kind") or None,
            ready=f.validated_data.get("ready"),
        )
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(UnitListSerializer(page, many=True).data)

    @extend_schema(responses=UnitDetailSerializer)
    def retrieve(self, request, pk=None):
        try:
            unit = unit_get(user=request.user, unit_id=int(pk))
        except (Unit.DoesNotExist, ValueError):
            return Response({"detail": _("未找到。")}, status=status.HTTP_404_NOT_FOUND)
        return Response(UnitDetailSerializer(unit, context={"request": request}).data)


class RegionSerializer(serializers.ModelSerializer):
    parent = serializers.CharField(source="parent.code", default=None)

    class Meta:
        model = Region
        fields = ["id", "code", "name", "name_en", "level", "parent", "lat", "lon"]
