"""Fictitious but internally consistent Chinese resident identities.

Every number is checksum-valid (GB 11643-1999) and its region code, birth date and sex
agree with the printed fields, so a reader can be tested end to end; the people do not
exist. Nothing here may ever come from a real person's card.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import asdict, dataclass
from typing import Final, Literal

from services.synth.regions import MUNICIPALITIES, County, counties

# Cards read on this date must mostly be valid; ~5% are generated already expired.
REFERENCE_DATE = dt.date(2026, 11, 29)
# Second-generation cards were first issued in 2004.
FIRST_ISSUE_DATE = dt.date(2004, 1, 1)
EXPIRED_FRACTION = 0.05
LONG_TERM: Final = "long-term"

# The 56 officially recognised ethnic groups, as printed (without the trailing 族).
ETHNICITIES: tuple[str, ...] = tuple(
    (
        "汉 蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 "
        "哈萨克 傣 黎 傈僳 佤 畲 高山 拉祜 水 东乡 纳西 景颇 柯尔克孜 土 "
        "达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 普米 塔吉克 怒 乌孜别克 "
        "俄罗斯 鄂温克 德昂 保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 "
        "基诺 "
    ).split()
)
HAN_FRACTION = 0.70

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余"
    "杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史"
)
_COMPOUND_SURNAMES = tuple("欧阳 司马 诸葛 上官 东方 皇甫 尉迟 慕容 司徒 令狐".split())
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华玉兰萍建国志红文辉鹏飞宇浩然"
    "子轩梓涵一诺欣怡晨阳思雨佳琪俊豪博文雅婷嘉怡天佑雨泽浩宇若汐诗涵梦瑶紫萱晓东海波"
    "春梅秋菊冬雪立新永福德胜金凤丽娟亚楠凯旋振华国庆卫东学军宏伟小龙玉珍淑珍桂英秀兰"
    "慧颖婉清昊天雪松晨曦文静心怡宁远宏达安琪子墨沐阳思远梓萱锦程星辰嘉豪鑫磊琳琦倩然"
    "彬晶莉蕾燕岚琴瑞璐薇芸蓉荣鑫琳斌健毅峰岩钢"
)
_ROAD_ROOTS = tuple(
    (
        "人民 建设 解放 中山 和平 新华 胜利 文化 长江 黄河 光明 幸福 青年 "
        "友谊 朝阳 东风 红旗 学府 花园 滨江 复兴 迎宾 工业 健康 团结 建国 "
        "五一 八一 环城 体育 公园 望江 金桥 翠湖 银河 振兴 育才 广场 "
    ).split()
)
_ROAD_SUFFIXES = ("路", "路", "街", "大街", "大道", "巷")
_DIRECTIONS = ("", "", "", "东", "西", "南", "北", "中")
_COMMUNITY = ("花园", "小区", "家园", "新村", "苑", "公寓", "嘉园", "华庭")
_VILLAGE_SUFFIX = ("村", "村", "屯", "庄")
_TOWN_SUFFIX = ("镇", "乡")

Sex = Literal["男", "女"]


@dataclass(frozen=True, slots=True)
class SyntheticIdentity:
    """Everything printed on both sides of one fictitious card."""

    name: str
    sex: Sex
    ethnicity: str  # one of ETHNICITIES, without the trailing 族 (as printed)
    birth_date: dt.date
    address: str
    id_number: str
    authority: str
    valid_from: dt.date
    valid_to: dt.date | Literal["long-term"]

    @property
    def region_code(self) -> str:
        return self.id_number[:6]

    def is_expired(self, on: dt.date = REFERENCE_DATE) -> bool:
        """True when the card's validity ended before ``on``."""
        return isinstance(self.valid_to, dt.date) and self.valid_to < on

    @property
    def validity_text(self) -> str:
        """The validity period as printed: ``2015.03.01-2035.03.01`` or ``...-长期``."""
        end = "长期" if self.valid_to == LONG_TERM else _dotted(self.valid_to)
        return f"{_dotted(self.valid_from)}-{end}"

    def to_json(self) -> dict[str, str]:
        """JSON-ready fields, dates as YYYY-MM-DD and ``valid_to`` "long-term" for 长期."""
        data = asdict(self)
        return {
            key: value.isoformat() if isinstance(value, dt.date) else value
            for key, value in data.items()
        }


def _dotted(value: dt.date | str) -> str:
    assert isinstance(value, dt.date)
    return value.strftime("%Y.%m.%d")


def id_check_character(first17: str) -> str:
    """GB 11643 check character of the first 17 digits (10 is written X)."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, ID_WEIGHTS, strict=True))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def add_years(day: dt.date, years: int) -> dt.date:
    """Same month and day ``years`` later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def age_on(birth: dt.date, day: dt.date) -> int:
    """Completed years of age on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def validity_years(age_at_issue: int) -> int | None:
    """Validity in years by age at issue (None = long-term), per the ID card law."""
    if age_at_issue < 16:
        return 5
    if age_at_issue <= 25:
        return 10
    if age_at_issue <= 45:
        return 20
    return None


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _name(rng: random.Random) -> str:
    surname = rng.choice(_COMPOUND_SURNAMES) if rng.random() < 0.04 else rng.choice(_SURNAMES)
    given_length = 1 if rng.random() < 0.3 else 2
    return surname + "".join(rng.choice(_GIVEN) for _ in range(given_length))


def _street(rng: random.Random, county: County) -> str:
    """The part of the address after the county name, in one of three common shapes."""
    road = rng.choice(_DIRECTIONS) + rng.choice(_ROAD_ROOTS) + rng.choice(_ROAD_SUFFIXES)
    shape = rng.random()
    if shape < 0.35:  # 建国路88号院3号楼2单元501室
        return (
            f"{road}{rng.randint(1, 399)}号院{rng.randint(1, 30)}号楼"
            f"{rng.randint(1, 6)}单元{rng.randint(1, 28)}{rng.randint(1, 4):02d}室"
        )
    if shape < 0.65:  # 幸福花园12栋1103室
        community = rng.choice(_ROAD_ROOTS) + rng.choice(_COMMUNITY)
        return f"{community}{rng.randint(1, 40)}栋{rng.randint(1, 33)}{rng.randint(1, 6):02d}室"
    if shape < 0.85 or county.county.endswith("区"):  # 人民路128号
        return f"{road}{rng.randint(1, 999)}号"
    # Rural: 城关镇红旗村3组45号
    town = rng.choice(_ROAD_ROOTS) + rng.choice(_TOWN_SUFFIX)
    village = rng.choice(_ROAD_ROOTS) + rng.choice(_VILLAGE_SUFFIX)
    return f"{town}{village}{rng.randint(1, 12)}组{rng.randint(1, 99)}号"


def _address(rng: random.Random, county: County) -> str:
    # Keep to 12-40 characters (1-3 printed lines); retry shorter shapes if too long.
    for _ in range(20):
        address = county.address_prefix + _street(rng, county)
        if 12 <= len(address) <= 40:
            return address
    return county.address_prefix + f"{rng.randint(1, 99)}号"


def _authority(county: County) -> str:
    if county.county.endswith("区"):
        city = county.province if county.code[:2] in MUNICIPALITIES else county.city
        short = county.county[:-1] if len(county.county) > 2 else county.county
        if city:
            return f"{city}公安局{short}分局"
    return f"{county.county}公安局"


def _validity(
    rng: random.Random, birth: dt.date, *, expired: bool
) -> tuple[dt.date, dt.date | Literal["long-term"]] | None:
    """An issue date and expiry that is (or is not) expired on REFERENCE_DATE, if one exists."""
    earliest = max(FIRST_ISSUE_DATE, add_years(birth, 1))
    latest = REFERENCE_DATE - dt.timedelta(days=14)
    for _ in range(30):
        issued = _random_date(rng, earliest, latest)
        years = validity_years(age_on(birth, issued))
        valid_to: dt.date | Literal["long-term"] = (
            LONG_TERM if years is None else add_years(issued, years)
        )
        is_expired = isinstance(valid_to, dt.date) and valid_to < REFERENCE_DATE
        if is_expired == expired:
            return issued, valid_to
    return None


def generate_identity(rng: random.Random) -> SyntheticIdentity:
    """Draw one fictitious identity; the same ``rng`` state always gives the same one."""
    expired = rng.random() < EXPIRED_FRACTION
    while True:
        # Adults buying SIM cards, with a few teenagers: 16-80 years old on REFERENCE_DATE.
        birth = _random_date(rng, add_years(REFERENCE_DATE, -80), add_years(REFERENCE_DATE, -16))
        validity = _validity(rng, birth, expired=expired)
        if validity is not None:
            break
    # The code must already exist in the birth year, as stdnum.cn.ric checks.
    candidates = [county for county in counties() if county.since <= birth.year]
    county = rng.choice(candidates)
    sex: Sex = "男" if rng.random() < 0.5 else "女"
    # Sequence number: odd for men, even for women.
    sequence = rng.randrange(1 if sex == "男" else 2, 1000, 2)
    first17 = f"{county.code}{birth:%Y%m%d}{sequence:03d}"
    ethnicity = "汉" if rng.random() < HAN_FRACTION else rng.choice(ETHNICITIES[1:])
    return SyntheticIdentity(
        name=_name(rng),
        sex=sex,
        ethnicity=ethnicity,
        birth_date=birth,
        address=_address(rng, county),
        id_number=first17 + id_check_character(first17),
        authority=_authority(county),
        valid_from=validity[0],
        valid_to=validity[1],
    )
