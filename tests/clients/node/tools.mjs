// A tools loop as a Node user writes it with the openai package: a streamed request that
// the model answers with a call, the call run here, its result sent back, the final text.
// Prints one JSON object for tests/e2e/test_clients.py. Env: BASE_URL, API_KEY, MODEL.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.BASE_URL,
  apiKey: process.env.API_KEY,
  maxRetries: 0,
  timeout: 60_000,
});
const model = process.env.MODEL;
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "The weather now in a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      },
    },
  },
];
const messages = [{ role: "user", content: process.env.PROMPT }];

// The SDK's stream helper accumulates the deltas and checks their shapes as it goes.
const runner = client.chat.completions.stream({ model, messages, tools, stream: true });
let chunks = 0;
runner.on("chunk", () => chunks++);
const streamed = await runner.finalChatCompletion();
const choice = streamed.choices[0];
const calls = choice.message.tool_calls ?? [];
messages.push(choice.message);
for (const call of calls) {
  JSON.parse(call.function.arguments); // the arguments must be JSON
  messages.push({ role: "tool", tool_call_id: call.id, content: JSON.stringify({ celsius: 18 }) });
}
const final = await client.chat.completions.create({ model, messages, tools });
console.log(
  JSON.stringify({
    chunks,
    finish_reason: choice.finish_reason,
    calls: calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
    final_finish_reason: final.choices[0].finish_reason,
    final_content: final.choices[0].message.content,
  }),
);
