"""The demo city's figures: sizes, shares, name parts and the demo logins."""

from __future__ import annotations

import numpy as np

from ..models import StaffProfile, Unit

DEFAULT_UNITS = 23_000
MAX_UNITS = 3_000_000
DEFAULT_SEED = 20241
DEMO_PASSWORD = "demo12345"  # noqa: S105 - the documented demo password

# The field figures for the whole city (see DESIGN.md); smaller cities scale them.
FULL_CITY_UNITS = 23_000
FULL_CITY_MEMBERS = 245_500
FULL_CITY_ON_DUTY = 41_000

CITY_CODE = "4401"
CITY_NAME = "广州市"
# The centre as usually given for Guangzhou (old town, 越秀). The area centroid
# of the 11 districts lies in rural 白云/从化 and would be a poor map centre.
CITY_LAT, CITY_LON = 23.1291, 113.2644
# Tianhe Sports Centre: the spot demo_logins lists on-duty members around.
DEMO_SPOT_LAT, DEMO_SPOT_LON = 23.1291, 113.3240

CORE_DISTRICTS = frozenset({"440103", "440104", "440105", "440106"})  # 荔湾 越秀 海珠 天河
# Approximate resident population (2020 census, 10k people). Units follow
# people, and the core gets 1.5x on top because malls, offices and schools
# cluster there.
DISTRICT_POPULATION = {
    "440103": 123.8,
    "440104": 103.9,
    "440105": 181.9,
    "440106": 224.2,
    "440111": 374.3,
    "440112": 126.4,
    "440113": 265.8,
    "440114": 164.2,
    "440115": 84.7,
    "440117": 71.8,
    "440118": 146.7,
}
CORE_FACTOR = 1.5

KINDS: tuple[str, ...] = tuple(Unit.Kind.values)
# Per kind: weight among units in core / suburban / town streets, then the
# roster weight (bigger sites keep bigger rosters). Core streets have more
# malls, hotels and offices; towns more markets, schools and villages.
KIND_MIX: dict[str, tuple[float, float, float, float]] = {
    "mall": (13, 10, 6, 1.3),
    "school": (13, 15, 17, 1.1),
    "hospital": (5, 5, 5, 1.4),
    "company": (27, 25, 20, 1.0),
    "market": (8, 9, 13, 0.9),
    "hotel": (9, 6, 4, 0.9),
    "transport": (5, 4, 3, 1.3),
    "community": (14, 18, 22, 0.8),
    "other": (6, 8, 10, 0.7),
}


def _kind_column(col: int) -> np.ndarray:
    return np.array([KIND_MIX[k][col] for k in KINDS], dtype=float)


KIND_P_CORE, KIND_P_SUBURB, KIND_P_TOWN = (
    _kind_column(c) / _kind_column(c).sum() for c in range(3)
)
KIND_ROSTER_WEIGHT = _kind_column(3)
MIN_ROSTER = 5
# How many of a unit's members are on duty: mostly 2-3, some 0-1.
DUTY_CHOICES = np.array([0, 1, 2, 3])
DUTY_P = np.array([0.07, 0.22, 0.54, 0.17])
TRAINED_SHARE = 0.93
NEAR_EXPIRY_SHARE = 0.03
AED_SHARE = {"hospital": 0.7, "mall": 0.4, "transport": 0.25}

# Placement: Gaussian spread (metres) around the street point, by street class;
# a share of each street's units scatters uniformly over the district, which is
# what makes the edges sparse rather than empty.
SIGMA_M = {"core": 350.0, "suburb": 700.0, "town": 1500.0, "other": 2000.0}
SCATTER_SHARE = {"core": 0.03, "suburb": 0.10, "town": 0.15, "other": 0.3}
STREET_WEIGHT = {"core": 1.0, "suburb": 1.0, "town": 0.8, "other": 0.05}
METRES_PER_DEGREE = 111_320.0

# Real-looking mobile prefixes (all 1[3-9]x).
MOBILE_PREFIXES = (
    *range(130, 140),
    *range(150, 154),
    *range(155, 160),
    *range(180, 190),
    *(166, 170, 173, 175, 176, 177, 178, 191, 198, 199),
)

SURNAMES = (
    "陈李黄张梁林刘吴罗何郑杨谢钟曾周邓许冯赖叶蔡郭王彭廖卢苏胡潘"
    "朱江徐欧温邱莫谭余钱麦简关区高方杜孔袁陆沈"
)
GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建文辉力斌鹏宇浩凯"
    "俊婷雪琳晶欣怡嘉颖思源志海东峰晓燕丹锦荣家耀诗慧雯彬健少玲永润泽梓"
)
_ROADS = (
    "中山 解放 东风 环市 天河 体育 花城 珠江 滨江 江南 新港 工业 广园 沙河 龙口 石牌 员村 车陂 "
    "科韵 黄埔 广州大道 机场 同和 京溪 新市 芳村 昌岗 宝岗 南洲 人民 文明 惠福 恩宁 龙溪 金沙 迎宾 "
    "市桥 新华 凤凰 荔湖"
)
ROAD_WORDS = tuple(_ROADS.split())
ROAD_SUFFIXES = ("路", "路", "大道", "街", "大街", "中路", "北路", "南路", "东路", "西路")
INDUSTRIES = ("科技", "实业", "物流", "电子", "建设", "贸易", "食品", "医药", "网络科技", "服饰")
VENUE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "mall": ("{p}广场", "{p}购物中心", "{p}天地", "{p}百货", "{p}商业城", "{p}万达广场"),
    "school": (
        "{p}小学",
        "{p}中学",
        "{p}实验学校",
        "{p}幼儿园",
        "{p}职业技术学校",
        "{p}外国语学校",
    ),
    "hospital": (
        "{p}医院",
        "{d}人民医院",
        "{p}社区卫生服务中心",
        "{p}中医医院",
        "{p}门诊部",
        "{d}妇幼保健院",
    ),
    "company": ("广州{p}{i}有限公司", "广州市{p}{i}股份有限公司", "{p}{i}集团"),
    "market": ("{p}农贸市场", "{p}综合市场", "{p}批发市场", "{p}肉菜市场"),
    "hotel": ("{p}大酒店", "{p}宾馆", "{p}商务酒店", "{p}国际酒店"),
    "transport": ("{p}地铁站", "{p}公交总站", "{p}客运站", "{p}停车场"),
    "community": ("{p}社区", "{p}花园", "{p}新村", "{p}小区"),
    "other": ("{p}公园", "{p}体育馆", "{p}文化中心", "{p}图书馆", "{p}写字楼"),
}

WRITE_BATCH = 20_000  # objects built per bulk_create call (bounds memory)
# Rows per INSERT statement (Django caps it lower on SQLite, by its 999-parameter limit).
DB_BATCH = 5_000

STAFF_LOGINS = (
    # username, role, region picked by _staff_region
    ("admin", StaffProfile.Role.CITY_ADMIN),
    ("tianhe_admin", StaffProfile.Role.DISTRICT_ADMIN),
    ("yuexiu_street", StaffProfile.Role.STREET_ADMIN),
    ("reviewer", StaffProfile.Role.POLICE_REVIEWER),
    ("station_tianhe", StaffProfile.Role.POLICE_STATION),
)
TIANHE, YUEXIU = "440106", "440104"
TIANHE_STATION_STREET = "440106008"  # 天河南街道, around the sports centre
YUEXIU_STREET = "440104001"  # 洪桥街道


class SeedError(Exception):
    """Bad arguments or data: nothing has been written."""
