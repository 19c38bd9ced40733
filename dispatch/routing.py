from django.urls import path

from .consumers import MemberConsumer, SupervisorConsumer

websocket_urlpatterns = [
    path("ws/member/", MemberConsumer.as_asgi()),
    path("ws/supervisor/", SupervisorConsumer.as_asgi()),
]
