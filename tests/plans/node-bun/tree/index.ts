export default { port: Number(process.env.PORT), fetch: () => new Response('ok') }
