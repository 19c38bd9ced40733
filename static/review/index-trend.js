/* One area's index explained: its score over the last eight weeks (Chart.js). */
import { pageData } from "./data.js";

const t = pageData("trend-data");
const canvas = document.getElementById("trend");
if (t && canvas) {
  Chart.defaults.animation = false;
  new Chart(canvas, { type: "line",
    data: { labels: t.labels, datasets: [{ label: gettext("综合得分"), data: t.scores, borderColor: "#1b6ac9", spanGaps: true }] },
    options: { scales: { y: { min: 0, max: 100 } } } });
}
