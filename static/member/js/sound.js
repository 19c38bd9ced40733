// Sound and vibration for an alert.
import { $ } from "./config.js";
import { enablePush } from "./push.js";

// --- Sound and vibration -------------------------------------------------------------
export let audio = null;
export let ringing = null;
export function soundEnabled() {
  return audio && audio.state === "running";
}
export async function enableSound() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    await audio.resume();
    beep(0.15);
  } catch (e) {
    /* no audio on this device: vibration and the screen still alert */
  }
  $("enable-sound").hidden = soundEnabled();
  enablePush();
}
export function beep(seconds = 0.4, freq = 880) {
  if (!soundEnabled()) return;
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.type = "square";
  osc.frequency.value = freq;
  gain.gain.value = 0.25;
  osc.connect(gain).connect(audio.destination);
  osc.start();
  osc.stop(audio.currentTime + seconds);
}
export function ring() {
  stopRing();
  let n = 0;
  const tick = () => {
    beep(0.35, n % 2 ? 660 : 990);
    if (navigator.vibrate) navigator.vibrate([500, 200, 500]);
    if (++n >= 20) stopRing();
  };
  tick();
  ringing = setInterval(tick, 1200);
}
export function stopRing() {
  if (ringing) clearInterval(ringing);
  ringing = null;
  if (navigator.vibrate) navigator.vibrate(0);
}
