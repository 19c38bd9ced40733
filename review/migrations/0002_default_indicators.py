"""The default readiness-and-response index tree (editable afterwards in the admin)."""

from django.db import migrations

# code, name, weight, metric, good, bad, children
DEFAULT_TREE = (
    "readiness_response", "就绪与响应综合指数", 1.0, "", None, None, [
        ("timing", "响应时效", 0.25, "", None, None, [
            ("response_median", "响应时长中位数", 0.5, "response_median_s", 30, 120, []),
            ("arrival_median", "到场时长中位数", 0.5, "arrival_median_s", 120, 360, []),
        ]),
        ("compliance", "1-3-5 达标", 0.25, "", None, None, [
            ("responded_1min", "1分钟响应率", 0.4, "responded_1min_pct", 95, 50, []),
            ("controlled_3min", "3分钟到场率", 0.4, "controlled_3min_pct", 90, 40, []),
            ("handled_5min", "5分钟处置率", 0.2, "handled_5min_pct", 85, 30, []),
        ]),
        ("drills", "拉动测试", 0.15, "", None, None, [
            ("drill_ack", "演练响应率", 0.5, "drill_ack_pct", 95, 50, []),
            ("drill_arrival", "演练到位时长中位数", 0.5, "drill_arrival_median_s", 120, 600, []),
        ]),
        ("readiness", "战备值守", 0.2, "", None, None, [
            ("duty_coverage", "在岗可派覆盖率", 0.5, "duty_coverage_pct", 95, 60, []),
            ("kit_complete", "装备齐全在效率", 0.5, "kit_complete_pct", 100, 70, []),
        ]),
        ("coverage", "覆盖能力", 0.15, "", None, None, [
            ("coverage_gap", "3分钟覆盖盲区占比", 1.0, "coverage_gap_pct", 20, 90, []),
        ]),
    ],
)  # fmt: skip


def create(apps, schema_editor):
    node_model = apps.get_model("review", "IndicatorNode")
    if node_model.objects.exists():
        return

    def add(spec, parent, order):
        code, name, weight, metric, good, bad, children = spec
        node = node_model.objects.create(
            parent=parent, code=code, name=name, weight=weight, metric=metric,
            good=good, bad=bad, order=order,
        )  # fmt: skip
        for i, child in enumerate(children):
            add(child, node, i)

    add(DEFAULT_TREE, None, 0)


def remove(apps, schema_editor):
    apps.get_model("review", "IndicatorNode").objects.filter(parent__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("review", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
