/* The response report's charts (Chart.js, loaded before as a classic script):
 * 1-3-5 compliance per area, and the weekly trend of medians and compliance. */
import { pageData } from "./data.js";

const data = pageData("chart-data");
if (data) {
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;
  const areas = document.getElementById("chart-areas");
  if (areas && data.areas.length) {
    new Chart(areas, {
      type: "bar",
      data: { labels: data.areas.map(function (a) { return a.label; }),
        datasets: [
          { label: gettext("1-3-5 达标率 %"), data: data.areas.map(function (a) { return a.compliance_pct; }), backgroundColor: "#2e9d5b" },
          { label: gettext("1分钟响应率 %"), data: data.areas.map(function (a) { return a.responded_pct; }), backgroundColor: "#1b6ac9" },
          { label: gettext("3分钟到场率 %"), data: data.areas.map(function (a) { return a.controlled_pct; }), backgroundColor: "#f0ad4e" }
        ] },
      options: { indexAxis: "y", scales: { x: { min: 0, max: 100 } } }
    });
  }
  const weeks = document.getElementById("chart-weeks");
  if (weeks) {
    new Chart(weeks, {
      type: "line",
      data: { labels: data.weeks.map(function (w) { return w.label; }),
        datasets: [
          { label: gettext("响应中位数(秒)"), data: data.weeks.map(function (w) { return w.to_response_s_median; }), borderColor: "#1b6ac9", yAxisID: "s" },
          { label: gettext("到场中位数(秒)"), data: data.weeks.map(function (w) { return w.to_control_s_median; }), borderColor: "#f0ad4e", yAxisID: "s" },
          { label: gettext("处置中位数(秒)"), data: data.weeks.map(function (w) { return w.to_handling_s_median; }), borderColor: "#8c564b", yAxisID: "s" },
          { label: gettext("达标率 %"), data: data.weeks.map(function (w) { return w.compliance_pct; }), borderColor: "#2e9d5b", borderDash: [5, 4], yAxisID: "pct" }
        ] },
      options: { scales: { s: { position: "left", beginAtZero: true }, pct: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } } } }
    });
  }
}
