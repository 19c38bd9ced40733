from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from units.models import Equipment, EquipmentKind, Member, Region, StaffProfile, Unit


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region

    code = factory.Sequence(lambda n: f"R{n:06d}")
    name = factory.Sequence(lambda n: f"区域{n}")
    level = Region.Level.STREET
    lat = 23.13
    lon = 113.32


class UnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Unit

    code = factory.Sequence(lambda n: f"U{n:06d}")
    name = factory.Sequence(lambda n: f"单元{n}")
    kind = Unit.Kind.MALL
    region = factory.SubFactory(RegionFactory)
    lat = 23.13
    lon = 113.32


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    name = factory.Sequence(lambda n: f"队员{n}")
    phone = factory.Sequence(lambda n: f"139{n:08d}")
    unit = factory.SubFactory(UnitFactory)


class EquipmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Equipment

    unit = factory.SubFactory(UnitFactory)
    kind = EquipmentKind.SHIELD
    quantity = 2


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-12345678")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffProfile

    user = factory.SubFactory(UserFactory, is_staff=True)
    role = StaffProfile.Role.DISTRICT_ADMIN
    region = factory.SubFactory(RegionFactory, level=Region.Level.DISTRICT)
