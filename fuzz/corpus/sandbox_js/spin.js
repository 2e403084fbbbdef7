//js
while (true) {}
