from channels.auth import AuthMiddlewareStack
from django.urls import path

from .consumers import MemberConsumer, SupervisorConsumer

websocket_urlpatterns = [
    # A member socket signs itself in from its cookies with one query
    # (selectors.member_for_socket); channels' AuthMiddleware would first read
    # the session and the user on daphne's one database thread, for every phone,
    # and keep them in the scope for the socket's life.
    path("ws/member/", MemberConsumer.as_asgi()),
    path("ws/supervisor/", AuthMiddlewareStack(SupervisorConsumer.as_asgi())),
]
