// Outbound: a Stripe event becomes a Slack incoming-webhook message.
function handle(request) {
  const event = request.body;
  const object = event.data.object;
  const amount = (object.amount_paid ?? object.amount ?? 0) / 100;
  const currency = String(object.currency || "").toUpperCase();
  const who = object.customer_email || object.customer || "a customer";
  return {
    body: {
      text: event.type + ": " + amount.toFixed(2) + " " + currency + " from " + who,
      blocks: [
        { type: "section", text: { type: "mrkdwn", text: "*" + event.type + "*\n" + amount.toFixed(2) + " " + currency + " from " + who } },
        { type: "context", elements: [{ type: "mrkdwn", text: "Stripe event `" + event.id + "`" }] },
      ],
    },
  };
}
