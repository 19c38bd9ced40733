// Sound and vibration for an alert.
import { $ } from "./config.js";
import { enablePush } from "./push.js";

// --- Sound and vibration -------------------------------------------------------------
// Chrome refuses (and logs an error for) vibration before the user's first tap on
// the page; the screen and sound still alert then.
function vibrate(pattern) {
  const activated = !navigator.userActivation || navigator.userActivation.hasBeenActive;
  if (navigator.vibrate && activated) navigator.vibrate(pattern);
}
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
    vibrate([500, 200, 500]);
    if (++n >= 20) stopRing();
  };
  tick();
  ringing = setInterval(tick, 1200);
}
export function stopRing() {
  if (ringing) clearInterval(ringing);
  ringing = null;
  vibrate(0);
}
