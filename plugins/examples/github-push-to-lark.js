// Outbound: a GitHub push, as received, becomes a Lark/Feishu bot's rich-text post.
function handle(request) {
  const push = request.body;
  const branch = String(push.ref || "").replace("refs/heads/", "");
  const lines = (push.commits || []).slice(0, 5).map((c) => [
    { tag: "a", text: c.id.slice(0, 7), href: c.url },
    { tag: "text", text: " " + c.message.split("\n")[0] + " (" + c.author.name + ")" },
  ]);
  return {
    body: {
      msg_type: "post",
      content: {
        post: {
          en_us: {
            title: push.repository.full_name + ": " + push.commits.length + " commit(s) to " + branch,
            content: lines,
          },
        },
      },
    },
  };
}
