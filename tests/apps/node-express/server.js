const express = require('express');
const app = express();
app.get('/', (req, res) => res.send('express says VERSION-1'));
app.listen(Number(process.env.PORT), '0.0.0.0');
