//js
let o = 0; for (let i = 0; i < 1000; i++) o = [o]; o
