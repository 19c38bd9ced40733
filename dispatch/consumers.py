from channels.generic.websocket import AsyncJsonWebsocketConsumer


class MemberConsumer(AsyncJsonWebsocketConsumer):
    pass
