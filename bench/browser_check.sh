#!/usr/bin/env bash
# Plays our GIF, WebP and MP4 in headless Chromium (issue 6's browser evidence): encodes a
# 30-frame crossfade (bench/gif_quality.py makes it) into all three, serves them on localhost,
# lets Chromium decode every GIF/WebP frame (WebCodecs ImageDecoder) and play the MP4, and
# saves a screenshot of the page with what it found.
#   bench/browser_check.sh [WORK]   (WORK: bench/gif_quality.py's --work, default /tmp/sdinterp-gif-bench)
# Needs: chromium (apt-get install chromium), python3, and a finished bench/gif_quality.py run.
set -euo pipefail
work="${1:-/tmp/sdinterp-gif-bench}"
tool="$work/encode_frames_tool"
seq="$work/seq/astronaut-coffee-rocket"
out="$work/browser"
[ -x "$tool" ] && [ -d "$seq" ] || { echo "run bench/gif_quality.py first" >&2; exit 1; }
mkdir -p "$out"
for ext in gif webp mp4; do "$tool" "$out/walk.$ext" --fps 10 "$seq"/*.png; done

cat > "$out/index.html" <<'EOF'
<!doctype html>
<html><body style="margin:0;font:14px sans-serif;background:#eee">
<div style="display:flex;gap:8px">
  <figure style="margin:4px"><img src="walk.gif" width="256"><figcaption>GIF</figcaption></figure>
  <figure style="margin:4px"><img src="walk.webp" width="256"><figcaption>WebP</figcaption></figure>
  <figure style="margin:4px"><video id="mp4" src="walk.mp4" width="256" muted autoplay loop playsinline></video><figcaption>MP4</figcaption></figure>
</div>
<!-- served 8 s late: holds the load event (and so the screenshot) until the checks are done -->
<img src="/delay" width="1" height="1">
<pre id="out">checking...</pre>
<script>
const lines = [];
const show = () => { console.log(lines.join(' | ')); document.getElementById('out').textContent = lines.join(String.fromCharCode(10)); };
async function frames(url, type) {
  const data = await (await fetch(url)).arrayBuffer();
  const dec = new ImageDecoder({data, type});
  await dec.tracks.ready;
  await dec.completed;
  const t = dec.tracks.selectedTrack;
  let total = 0, size = '';
  for (let i = 0; i < t.frameCount; i++) {
    const r = await dec.decode({frameIndex: i});
    total += r.image.duration / 1000;
    size = `${r.image.displayWidth}x${r.image.displayHeight}`;
    r.image.close();
  }
  lines.push(`${url}: ${size}, ${t.frameCount} frames decoded, ${total.toFixed(0)} ms, repetitionCount=${t.repetitionCount}`);
  show();
}
(async () => {
  try { await frames('walk.gif', 'image/gif'); } catch (e) { lines.push('walk.gif: ' + e); }
  try { await frames('walk.webp', 'image/webp'); } catch (e) { lines.push('walk.webp: ' + e); }
  const v = document.getElementById('mp4');
  let painted = 0;
  const count = () => { painted++; v.requestVideoFrameCallback(count); };
  v.requestVideoFrameCallback(count);
  await new Promise(r => setTimeout(r, 2500));
  lines.push(`walk.mp4: ${v.videoWidth}x${v.videoHeight}, duration ${v.duration} s, playing (${painted} frames painted in 2.5 s), error=${v.error ? v.error.code : 'none'}`);
  show();
})();
</script></body></html>
EOF

cat > "$out/serve.py" <<'EOF'
import functools, http.server, sys, time
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith('/delay'):
            time.sleep(8)
            self.path = '/walk.gif'
        return super().do_GET()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Handler, directory=sys.argv[1]))
print(server.server_address[1], flush=True)
server.serve_forever()
EOF
coproc SERVER { exec python3 "$out/serve.py" "$out"; }
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
read -r port <&"${SERVER[0]}"
chromium --headless=new --no-sandbox --disable-gpu --autoplay-policy=no-user-gesture-required \
  --enable-logging=stderr --v=0 --window-size=820,470 --screenshot="$out/screenshot.png" \
  "http://127.0.0.1:$port/index.html" 2>&1 | grep -o '"walk.gif:.*mp4:[^"]*"' | tail -1 | tr '|' '\n'
echo "screenshot: $out/screenshot.png"
