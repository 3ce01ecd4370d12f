// Inbound: drop what nobody needs before it is stored, and name the rest.
const NOISY = ["ping", "watch", "star", "check_suite"];

function handle(request) {
  const type = request.headers["x-github-event"];
  if (NOISY.includes(type)) return { drop: true };
  if (type === "push" && request.body.deleted) return { drop: true };
  return { event_type: "github." + type };
}
